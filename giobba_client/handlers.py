"""Handler registry, and loading one from a module or file (`giobba worker --app`)."""

import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from giobba_client.context import TaskContext
from giobba_client.models import Task

# A handler takes (ctx, task) and returns a dict, a HandlerResult or None — or an awaitable
# of one of those when it is an `async def`.
Handler = Callable[[TaskContext, Task], Any]
H = TypeVar("H", bound=Handler)


class Handlers:
    """Task name -> handler. Apps build one; a `Worker` serves one."""

    def __init__(self) -> None:
        self._by_name: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        if not name or not name.strip():
            raise ValueError("handler name must not be empty")
        if not callable(handler):
            raise TypeError(f"handler for {name!r} is not callable")
        self._by_name[name] = handler

    def __call__(self, name: str | None = None) -> Callable[[H], H]:
        """Decorator: `@handlers("resize")`, or bare `@handlers()` to use the function name."""

        def wrap(fn: H) -> H:
            self.register(name or fn.__name__, fn)
            return fn

        return wrap

    def get(self, name: str) -> Handler | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def update(self, other: "Handlers") -> None:
        self._by_name.update(other._by_name)


def is_async(handler: Handler) -> bool:
    target = getattr(handler, "__call__", handler)  # noqa: B004 - also async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(target)


def _import(app: str) -> Any:
    path = Path(app)
    is_file = app.endswith(".py") or path.is_file()
    if is_file and not path.is_file():
        raise ValueError(f"--app: no such file {app}")
    try:
        return _load_file(path) if is_file else _load_module(app)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (app == exc.name or app.startswith(exc.name + ".")):
            raise ValueError(f"--app: cannot import module {app!r}: {exc}") from None
        raise ValueError(f"--app: importing {app} failed: {_where(exc)}") from None
    except Exception as exc:  # the app's own code failed: say what and where, in one line
        raise ValueError(f"--app: importing {app} failed: {_where(exc)}") from None


def _load_file(path: Path) -> Any:
    name = f"giobba_app_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise ValueError(f"--app: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load_module(app: str) -> Any:
    # As `python -m` does: a module in the working directory is importable by name (the
    # console script's own directory is what Python put on the path instead).
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(app)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    origin = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{origin}"


def load_app(app: str) -> Handlers:
    """Every `Handlers` object the module defines at top level, merged."""
    module = _import(app)
    found = Handlers()
    for value in vars(module).values():
        if isinstance(value, Handlers):
            found.update(value)
    if not found.names():
        raise ValueError(f"--app: {app} defines no Handlers (e.g. `handlers = Handlers()`)")
    return found
