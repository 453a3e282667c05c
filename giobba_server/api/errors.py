"""Domain errors -> gRPC status codes, in one place."""

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from giobba_server.api.shutdown import until_stopping
from giobba_server.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    GiobbaError,
    InvalidArgument,
    NotFound,
    StaleLease,
    Unavailable,
)

log = logging.getLogger("giobba.api")

CODES: list[tuple[type[GiobbaError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (StaleLease, grpc.StatusCode.ABORTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")


def code_for(exc: GiobbaError) -> grpc.StatusCode:
    for kind, code in CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, GiobbaError):
        await context.abort(code_for(exc), str(exc))
    log.exception("unexpected error in %s", type(exc).__name__)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")


def unary(
    fn: Callable[[Self, Req, grpc.aio.ServicerContext], Awaitable[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext], Awaitable[Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: Self, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await fn(self, request, context)
        except GiobbaError as exc:
            await _abort(context, exc)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc)
        raise AssertionError("unreachable: abort raises")

    return wrapper


def streaming(
    fn: Callable[[Self, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]]:
    @functools.wraps(fn)
    async def wrapper(
        self: Self, request: Req, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Resp]:
        deps = getattr(self, "_deps", None)
        stream = fn(self, request, context)
        if deps is not None:
            stream = until_stopping(stream, deps.stopping)
        try:
            async for item in stream:
                yield item
        except GiobbaError as exc:
            await _abort(context, exc)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc)

    return wrapper
