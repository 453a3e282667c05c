"""The project's error tree. Adapters translate driver errors into these; the API layer
maps each to one gRPC status code."""


class GiobbaError(Exception):
    """Root of every error Giobba raises on purpose."""


class InvalidArgument(GiobbaError):
    """A request field is wrong; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(GiobbaError):
    pass


class AlreadyExists(GiobbaError):
    pass


class FailedPrecondition(GiobbaError):
    """An illegal state move; the message says the current state."""


class StaleLease(GiobbaError):
    """A worker used a lease token that is no longer current (maps to ABORTED)."""


class Unavailable(GiobbaError):
    """A backend is down or timed out; nothing was written."""
