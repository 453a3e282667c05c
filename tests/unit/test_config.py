"""Configuration: lookup order, environment overrides, one-line errors naming the key."""

from datetime import timedelta
from pathlib import Path

import pytest

from giobba_server.config import ConfigError, load_config


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_embedded(tmp_path: Path) -> None:
    config = load_config(env={}, cwd=tmp_path, home=tmp_path / "home")
    assert config.broker.kind == "memory"
    assert config.database.kind == "sqlite"
    assert config.database.sqlite_path.endswith(".giobba/giobba.db")
    assert config.listen == "127.0.0.1:50051"


def test_later_files_and_env_override(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write(home / ".giobba" / "giobba.yml", "lockDuration: 10s\npollingTimeout: 5\n")
    _write(tmp_path / "giobba.yml", "lockDuration: 500ms\n")
    env = {"GIOBBA_DATABASE_URL": "sqlite:///x.db", "GIOBBA_BROKER_URL": "redis://h:1/2"}
    config = load_config(env=env, cwd=tmp_path, home=home)
    assert config.lock_duration == timedelta(milliseconds=500)
    assert config.polling_timeout == timedelta(seconds=5)
    assert config.database.sqlite_path == "x.db"
    assert config.broker.kind == "redis"


def test_dev_env_selects_dev_file(tmp_path: Path) -> None:
    _write(tmp_path / "giobba.yml", "lockDuration: 10s\n")
    _write(tmp_path / "giobba-dev.yml", "lockDuration: 20s\n")
    config = load_config(env={"GIOBBA_ENV": "dev"}, cwd=tmp_path, home=tmp_path / "h")
    assert config.lock_duration == timedelta(seconds=20)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("lockDuration: abc\n", "lockDuration"),
        ("lockDurationz: 1s\n", "lockDurationz"),
        ("database:\n  url: postgres://x\n", "database.url"),
        ("database:\n  urll: x\n", "database.urll"),
        ("broker:\n  url: http://x\n", "broker.url"),
        ("log:\n  level: LOUD\n", "log.level"),
        ("server:\n  listen: nowhere\n", "server.listen"),
        ("queues: []\n", "queues"),
        ("retry:\n  capp: 10m\n", "retry.capp"),
        ("retry:\n  base: 5m\n  cap: 1m\n", "retry.base"),
        ("server:\n  listne: x\n", "server.listne"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path / "giobba.yml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert f"config {key}:" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yml", env={})


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    env = {"GIOBBA_BROKER_ADMIN_PASSWORD": "hunter2", "GIOBBA_DATABASE_ADMIN_PASSWORD": "s3"}
    config = load_config(env=env, cwd=tmp_path, home=tmp_path)
    assert config.broker.password == "hunter2"
    assert "hunter2" not in repr(config)
    assert "s3" not in repr(config.database)


def test_mongo_database_from_url_path_unless_named(tmp_path: Path) -> None:
    env = {"GIOBBA_DATABASE_URL": "mongodb://u:p@h:27017/orders?authSource=admin"}
    assert load_config(env=env, cwd=tmp_path, home=tmp_path).database.name == "orders"
    _write(tmp_path / "giobba.yml", "database:\n  name: other\n")
    assert load_config(env=env, cwd=tmp_path, home=tmp_path).database.name == "other"
    plain = {"GIOBBA_DATABASE_URL": "mongodb://h:27017"}
    assert load_config(env=plain, cwd=tmp_path / "x", home=tmp_path / "y").database.name == "giobba"


def test_invalid_yaml_is_one_line_with_its_place(tmp_path: Path) -> None:
    path = _write(tmp_path / "giobba.yml", "queues: [a, b\nlockDuration: 3s\n")
    with pytest.raises(ConfigError) as err:
        load_config(env={}, cwd=tmp_path, home=tmp_path / "home")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"config {path}: is not valid YAML (")
    assert "line 2" in message


def test_start_up_log_says_where_without_secrets(tmp_path: Path) -> None:
    env = {
        "GIOBBA_DATABASE_URL": "mongodb://root:hunter2@db.example:27017/giobba?authSource=admin",
        "GIOBBA_BROKER_URL": "rediss://u:s3cret@cache.example:6380/1?ssl_ca_certs=/ca.pem",
    }
    config = load_config(env=env, cwd=tmp_path, home=tmp_path / "home")
    assert config.database.where() == "mongodb mongodb://db.example:27017/giobba"
    assert config.broker.where() == "redis rediss://cache.example:6380/1"


def test_sqlite_urls_follow_sqlalchemy_slashes(tmp_path: Path) -> None:
    """Three slashes: relative to the working directory; four: absolute. The log line shows
    the resolved file, so a relative one is never a surprise."""
    relative = load_config(
        env={"GIOBBA_DATABASE_URL": "sqlite:///data/g.db"}, cwd=tmp_path, home=tmp_path
    )
    assert relative.database.sqlite_path == "data/g.db"
    assert relative.database.where() == f"sqlite {Path('data/g.db').resolve()}"
    absolute = load_config(
        env={"GIOBBA_DATABASE_URL": "sqlite:////var/lib/g.db"}, cwd=tmp_path, home=tmp_path
    )
    assert absolute.database.sqlite_path == "/var/lib/g.db"
    embedded = load_config(env={}, cwd=tmp_path, home=tmp_path)
    assert embedded.broker.where() == "in-process"
