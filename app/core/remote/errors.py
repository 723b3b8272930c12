"""What can go wrong talking to a server, each as one sentence for the person.

The CLI prints ``str(error)`` as its one line (exit 2) and the status bar shows it; the
editor's text is never involved. ``retryable`` marks the failures worth another try
(nothing reached the server, or it said it is busy/loading).
"""

from __future__ import annotations

from app.core.errors import StarpadError


class RemoteError(StarpadError):
    """Base class of every server failure."""

    retryable = False


class ServerUnreachableError(RemoteError):
    """Nothing answers at the address (refused, unknown host, no route)."""

    retryable = True


class ServerBusyError(RemoteError):
    """HTTP 503: the server is loading its model or has no capacity right now."""

    retryable = True


class RemoteTimeoutError(RemoteError):
    """The server took longer than the timeout setting without sending anything."""


class RemoteAuthError(RemoteError):
    """HTTP 401/403: the API key is missing or refused."""


class RemoteServerError(RemoteError):
    """The server answered with an error status (its own message is included)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class RemoteProtocolError(RemoteError):
    """The answer is not what the protocol promises: garbage, malformed or cut-off stream."""


class NoFimTokensError(RemoteError):
    """The server's model has no fill-in-the-middle tokens, so it cannot complete at a caret."""


class RemoteConfigError(RemoteError):
    """A profile that cannot work as written (bad URL, unreadable CA bundle)."""
