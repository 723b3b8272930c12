"""Starpad: ``python main.py`` opens the window; ``python main.py <verb>`` runs headless."""

from app.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
