"""Making a remote engine from a profile: the remote counterpart of ``Engine.load``."""

from __future__ import annotations

from app.core.errors import CancelledError
from app.core.remote.base import RemoteEngineBase
from app.core.remote.http import Cancellable, StreamCancelled
from app.core.remote.llama_server import LlamaServerEngine
from app.core.remote.openai import OpenAIEngine
from app.core.remote.profile import ServerKind, ServerProfile


def connect(profile: ServerProfile, cancel: Cancellable | None = None) -> RemoteEngineBase:
    """Connect (health, model, context, FIM tokens); raises a ``RemoteError`` with one clear line."""
    try:
        if profile.kind is ServerKind.LLAMA_SERVER:
            return LlamaServerEngine(profile).connect(cancel)
        return OpenAIEngine(profile).connect(cancel)
    except StreamCancelled:
        raise CancelledError("connecting to the server was cancelled") from None
