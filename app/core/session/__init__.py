"""The Qt-free completion session (see ``completion``) and its parts."""

from app.core.session.cache import MAX_TYPED_AHEAD, CacheHit, CompletionCache, Place
from app.core.session.completion import (
    CompletionPhase,
    CompletionSession,
    DocumentState,
    JobRunner,
    NullView,
    RequestOutcome,
    RequestReport,
    SessionSettings,
    SessionView,
)
from app.core.session.jobs import JobQueue, QueuedJob, RequestKind, SessionJob
from app.core.session.requests import RequestSettings, build_request, recent_files_context
from app.core.session.runner import EngineRunner

__all__ = [
    "MAX_TYPED_AHEAD", "CacheHit", "CompletionCache", "CompletionPhase", "CompletionSession", "DocumentState",
    "EngineRunner", "JobQueue", "JobRunner", "NullView", "Place", "QueuedJob", "RequestKind", "RequestOutcome",
    "RequestReport", "RequestSettings", "SessionJob", "SessionSettings", "SessionView", "build_request",
    "recent_files_context",
]
