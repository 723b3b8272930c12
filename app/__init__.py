"""Starpad: a local StarCoder2 fill-in-the-middle code-completion playground."""

__version__ = "0.1.0"
APP_NAME = "Starpad"
