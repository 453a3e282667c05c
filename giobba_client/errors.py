"""The SDK's exception tree. Each error carries the gRPC status it came from."""

import grpc


class GiobbaError(Exception):
    """Root of every error the SDK raises on purpose."""

    code: grpc.StatusCode | None = None

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidArgument(GiobbaError):
    """A request field is wrong; the message names it."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def field(self) -> str:
        return str(self).split(":", 1)[0]


class NotFound(GiobbaError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(GiobbaError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(GiobbaError):
    """An illegal move; the message says the task's current state."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class LeaseLost(GiobbaError):
    """The lease token is stale: the task is no longer this worker's."""

    code = grpc.StatusCode.ABORTED


class Unavailable(GiobbaError):
    """The server or one of its backends is unreachable; safe to retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(GiobbaError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(GiobbaError):
    code = grpc.StatusCode.UNIMPLEMENTED


_BY_CODE: dict[grpc.StatusCode, type[GiobbaError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        LeaseLost,
        Unavailable,
        DeadlineExceeded,
        Unimplemented,
    )
    if cls.code is not None
}


def from_rpc_error(exc: grpc.RpcError) -> GiobbaError:
    code: grpc.StatusCode = exc.code()
    details: str = exc.details() or code.name
    return _BY_CODE.get(code, GiobbaError)(details, code)
