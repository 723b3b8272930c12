"""Remote engines: completions from a model on a server that already exists for the job.

Two kinds are spoken: llama.cpp's ``llama-server`` (``/completion`` with token ids, its
KV cache and ``timings``) and OpenAI-compatible ``/v1/completions`` servers (vLLM, TGI,
llama-cpp-python's server, Ollama, LM Studio). Both implement
``app.core.engine_api.CompletionEngine``, so the completion session, the comparison and
the evaluation never know which engine runs (``app.core.remote.factory.connect`` makes
one from a ``ServerProfile``). Nothing here runs unless a server profile is chosen: the
offline default sends nothing anywhere.
"""

from __future__ import annotations

from app.core.remote.errors import (
    NoFimTokensError, RemoteAuthError, RemoteError, RemoteProtocolError, RemoteServerError, RemoteTimeoutError,
    ServerUnreachableError,
)
from app.core.remote.profile import ServerKind, ServerProfile

__all__ = [
    "NoFimTokensError", "RemoteAuthError", "RemoteError", "RemoteProtocolError", "RemoteServerError",
    "RemoteTimeoutError", "ServerKind", "ServerProfile", "ServerUnreachableError",
]
