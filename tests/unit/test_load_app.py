"""`giobba worker --app`: a module by name from the working directory, or a .py file; an
app whose own code fails to import is reported in one line saying what and where."""

import sys
import uuid
from pathlib import Path

import pytest

from giobba_client.handlers import load_app

APP = "from giobba_client import Handlers\nhandlers = Handlers()\nhandlers('hi')(lambda c, t: {})\n"


def _module(tmp_path: Path, body: str) -> str:
    name = f"app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(body)
    return name


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    return tmp_path


def test_a_module_in_the_working_directory_loads_by_name(in_tmp: Path) -> None:
    assert load_app(_module(in_tmp, APP)).names() == ["hi"]


def test_a_file_loads_by_path(in_tmp: Path) -> None:
    assert load_app(f"{_module(in_tmp, APP)}.py").names() == ["hi"]


def test_an_unknown_module_is_named(in_tmp: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_app_x'"):
        load_app("no_such_app_x")


def test_the_apps_own_error_says_what_and_where(in_tmp: Path) -> None:
    name = _module(in_tmp, "x = 1\nraise RuntimeError('no config')\n")
    with pytest.raises(ValueError) as caught:
        load_app(name)
    message = str(caught.value)
    assert f"importing {name} failed: RuntimeError: no config" in message
    assert f"{name}.py:2" in message


def test_a_missing_dependency_of_the_app_is_not_taken_for_the_app(in_tmp: Path) -> None:
    name = _module(in_tmp, "import no_such_dependency_y\n")
    with pytest.raises(ValueError, match=r"failed: ModuleNotFoundError: .*no_such_dependency_y"):
        load_app(name)
