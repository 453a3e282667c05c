"""Configuration: giobba.yml files, then environment overrides, validated into frozen
dataclasses. The only module that reads os.environ for the server."""

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from giobba_server.domain.errors import GiobbaError
from giobba_server.domain.schedule import CronSchedule, ScheduleError

DEFAULT_LISTEN = "127.0.0.1:50051"
_SPAN_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ConfigError(GiobbaError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config {key}: {reason}")
        self.key = key


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""  # "" = embedded SQLite at sqlite_path
    name: str = "giobba"
    port: int | None = None
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    tasks_collection: str = "tasks"
    jobs_collection: str = "jobs"

    @property
    def kind(self) -> str:
        return "mongodb" if self.url.startswith(("mongodb://", "mongodb+srv://")) else "sqlite"

    @property
    def sqlite_path(self) -> str:
        # SQLAlchemy's convention: sqlite:///relative/to/cwd, sqlite:////absolute.
        if self.url.startswith("sqlite:///"):
            return self.url.removeprefix("sqlite:///") or ":memory:"
        return str(Path.home() / ".giobba" / "giobba.db")

    def where(self) -> str:
        """Where the records live, for the start-up log: never credentials."""
        if self.kind == "sqlite":
            path = self.sqlite_path
            return f"sqlite {path if path == ':memory:' else Path(path).resolve()}"
        return f"mongodb {_host_of(self.url)}"


@dataclass(frozen=True)
class BrokerConfig:
    url: str = ""  # "" = in-process
    port: int | None = None
    db: int | None = None
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def kind(self) -> str:
        return "redis" if self.url.startswith(("redis://", "rediss://")) else "memory"

    def where(self) -> str:
        """The broker for the start-up log: never credentials."""
        return "in-process" if self.kind == "memory" else f"redis {_host_of(self.url)}"


def _host_of(url: str) -> str:
    """scheme://host:port/path of a URL, without user, password or query (they may hold
    secrets)."""
    scheme, _, rest = url.partition("://")
    rest = rest.rsplit("@", 1)[-1].split("?", 1)[0]
    return f"{scheme}://{rest}"


@dataclass(frozen=True)
class CallbackConfig:
    secret: str = field(default="", repr=False)  # HMAC-SHA256 key; "" = unsigned
    max_attempts: int = 8
    connect_timeout: timedelta = timedelta(seconds=5)
    read_timeout: timedelta = timedelta(seconds=10)
    retry_base: timedelta = timedelta(seconds=1)
    retry_cap: timedelta = timedelta(minutes=5)
    concurrency: int = 32


@dataclass(frozen=True)
class Config:
    listen: str = DEFAULT_LISTEN
    queues: tuple[str, ...] = ("default",)
    workers_number: int = 4
    lock_duration: timedelta = timedelta(seconds=30)
    jobs_timeout_refresh: timedelta = timedelta(seconds=60)
    polling_timeout: timedelta = timedelta(seconds=30)
    execution_cutoff: timedelta | None = None
    retry_base: timedelta = timedelta(seconds=1)
    retry_cap: timedelta = timedelta(minutes=10)
    log_level: str = "INFO"
    log_format: str = "text"  # or "json"
    feed_retention: int = 100_000  # activity events kept for replay
    metrics_listen: str = ""  # HOST:PORT of the Prometheus endpoint; "" = off
    callbacks: CallbackConfig = CallbackConfig()
    timezone: str = "UTC"  # IANA zone of jobs created without one
    database: DatabaseConfig = DatabaseConfig()
    broker: BrokerConfig = BrokerConfig()

    def with_listen(self, listen: str) -> "Config":
        return dataclasses.replace(self, listen=check_listen("--listen", listen))


def parse_span(key: str, value: Any) -> timedelta:
    """Seconds as a number, or a string like '500ms', '30s', '5m', '2h'."""
    if isinstance(value, bool):
        raise ConfigError(key, f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _SPAN_RE.match(str(value))
        if not match:
            raise ConfigError(key, f"expected a duration like 30, '30s', '5m', got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(key, f"must be positive, got {value!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ConfigError(key, f"{value!r} is too long") from None


def _int(key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected an integer, got {value!r}") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise ConfigError(key, f"must be an integer in {low}-{high}, got {value!r}")
    return number


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str | int):
        raise ConfigError(key, f"expected a string, got {type(value).__name__}")
    return str(value)


def check_listen(key: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(key, f"{value!r} is not HOST:PORT (port 0-65535)")
    return value


def config_files(env: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    """Files in the order they apply: later ones override earlier ones."""
    name = "giobba-dev.yml" if env.get("GIOBBA_ENV") == "dev" else "giobba.yml"
    return [Path("/etc/giobba.d") / name, home / ".giobba" / name, cwd / name]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"is not valid YAML ({_yaml_reason(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must be a mapping of keys to values")
    return data


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """PyYAML's message spans lines (with a caret diagram): keep the problem and where."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_ENV = {
    "GIOBBA_DATABASE_URL": ("database", "url"),
    "GIOBBA_DATABASE_PORT": ("database", "port"),
    "GIOBBA_DATABASE_ADMIN_USERNAME": ("database", "adminUsername"),
    "GIOBBA_DATABASE_ADMIN_PASSWORD": ("database", "adminPassword"),
    "GIOBBA_BROKER_URL": ("broker", "url"),
    "GIOBBA_BROKER_PORT": ("broker", "port"),
    "GIOBBA_BROKER_ADMIN_USERNAME": ("broker", "adminUsername"),
    "GIOBBA_BROKER_ADMIN_PASSWORD": ("broker", "adminPassword"),
    "GIOBBA_BROKER_DB": ("broker", "db"),
    "GIOBBA_LISTEN": ("server", "listen"),
    "GIOBBA_LOG_LEVEL": ("log", "level"),
    "GIOBBA_LOG_FORMAT": ("log", "format"),
    "GIOBBA_CALLBACKS_SECRET": ("callbacks", "secret"),
    "GIOBBA_METRICS_LISTEN": ("metrics", "listen"),
}


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var, (section, key) in _ENV.items():
        if env.get(var):
            out.setdefault(section, {})[key] = env[var]
    return out


def load_config(
    explicit: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Config:
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError("--config", f"file {explicit} does not exist")
        raw = _read(explicit)
    else:
        for path in config_files(env, cwd or Path.cwd(), home or Path.home()):
            if path.is_file():
                raw = _merge(raw, _read(path))
    return build_config(_merge(raw, _env_overrides(env)))


KNOWN = {
    "queues",
    "workersNumber",
    "lockDuration",
    "jobsTimeoutRefresh",
    "pollingTimeout",
    "executionTimeCutOff",
    "database",
    "broker",
    "log",
    "server",
    "retry",
    "timezone",
    "feed",
    "callbacks",
    "metrics",
}


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a mapping")
    return value


def build_config(raw: Mapping[str, Any]) -> Config:
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise ConfigError(unknown[0], f"unknown key (known: {', '.join(sorted(KNOWN))})")
    spans = {
        key: parse_span(key, raw[key])
        for key in ("lockDuration", "jobsTimeoutRefresh", "pollingTimeout", "executionTimeCutOff")
        if raw.get(key) is not None
    }
    retry = _section(raw, "retry")
    _known("retry", retry, {"base", "cap"})
    retry_base = parse_span("retry.base", retry.get("base", 1))
    retry_cap = parse_span("retry.cap", retry.get("cap", 600))
    if retry_base > retry_cap:
        raise ConfigError("retry.base", f"{retry.get('base')!r} is longer than retry.cap")
    server = _section(raw, "server")
    _known("server", server, {"listen"})
    queues = raw.get("queues", ["default"])
    if isinstance(queues, str):
        queues = [q.strip() for q in queues.split(",") if q.strip()]
    if not isinstance(queues, list) or not queues:
        raise ConfigError("queues", "must be a non-empty list of queue names")
    log = _section(raw, "log")
    _known("log", log, {"level", "format"})
    level = str(log.get("level", "INFO")).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("log.level", f"must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    log_format = str(log.get("format", "text")).lower()
    if log_format not in ("text", "json"):
        raise ConfigError("log.format", f"must be text or json, got {log_format!r}")
    feed = _section(raw, "feed")
    _known("feed", feed, {"retention"})
    metrics = _section(raw, "metrics")
    _known("metrics", metrics, {"listen"})
    metrics_listen = _str("metrics.listen", metrics.get("listen") or "")
    defaults = Config()
    return Config(
        listen=check_listen(
            "server.listen",
            _str("server.listen", server.get("listen", DEFAULT_LISTEN)),
        ),
        queues=tuple(_str("queues", q) for q in queues),
        workers_number=_int("workersNumber", raw.get("workersNumber", 4), 1, 10_000),
        lock_duration=spans.get("lockDuration", defaults.lock_duration),
        jobs_timeout_refresh=spans.get("jobsTimeoutRefresh", defaults.jobs_timeout_refresh),
        polling_timeout=spans.get("pollingTimeout", defaults.polling_timeout),
        execution_cutoff=spans.get("executionTimeCutOff"),
        retry_base=retry_base,
        retry_cap=retry_cap,
        log_level=level,
        log_format=log_format,
        feed_retention=_int("feed.retention", feed.get("retention", 100_000), 10, 100_000_000),
        metrics_listen=check_listen("metrics.listen", metrics_listen) if metrics_listen else "",
        callbacks=_callbacks(_section(raw, "callbacks")),
        timezone=_timezone(raw.get("timezone", "UTC")),
        database=_database(_section(raw, "database")),
        broker=_broker(_section(raw, "broker")),
    )


_CALLBACK_KEYS = {"secret", "maxAttempts", "connectTimeout", "readTimeout"}
_CALLBACK_KEYS |= {"retryBase", "retryCap", "concurrency"}


def _callbacks(raw: Mapping[str, Any]) -> CallbackConfig:
    _known("callbacks", raw, _CALLBACK_KEYS)
    d = CallbackConfig()

    def span(key: str, default: timedelta) -> timedelta:
        value = raw.get(key)
        return default if value is None else parse_span(f"callbacks.{key}", value)

    return CallbackConfig(
        secret=_str("callbacks.secret", raw.get("secret") or ""),
        max_attempts=_int("callbacks.maxAttempts", raw.get("maxAttempts", d.max_attempts), 1, 100),
        connect_timeout=span("connectTimeout", d.connect_timeout),
        read_timeout=span("readTimeout", d.read_timeout),
        retry_base=span("retryBase", d.retry_base),
        retry_cap=span("retryCap", d.retry_cap),
        concurrency=_int("callbacks.concurrency", raw.get("concurrency", d.concurrency), 1, 1000),
    )


def _timezone(value: Any) -> str:
    zone = _str("timezone", value).strip() or "UTC"
    try:
        CronSchedule("@daily", zone)
    except ScheduleError as exc:
        raise ConfigError("timezone", exc.reason) from None
    return zone


def _opt_int(key: str, value: Any, high: int) -> int | None:
    return None if value in (None, "") else _int(key, value, 0, high)


def _known(section: str, raw: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{section}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(known))})"
        )


_DATABASE_KEYS = {"url", "name", "port", "adminUsername", "adminPassword"}
_DATABASE_KEYS |= {"tasksCollection", "jobsCollection"}
_BROKER_KEYS = {"url", "port", "db", "adminUsername", "adminPassword"}


def _url_database(url: str) -> str:
    """The database named in a mongodb:// URL's path (MongoDB's own convention)."""
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        return ""
    rest = url.split("://", 1)[1]
    _, _, path = rest.partition("/")
    return path.split("?", 1)[0]


def _database(raw: Mapping[str, Any]) -> DatabaseConfig:
    _known("database", raw, _DATABASE_KEYS)
    url = _str("database.url", raw.get("url", ""))
    if url and not url.startswith(("sqlite:///", "mongodb://", "mongodb+srv://")):
        raise ConfigError(
            "database.url", "must start with sqlite:///, mongodb:// or mongodb+srv://"
        )
    return DatabaseConfig(
        url=url,
        name=_str("database.name", raw.get("name") or _url_database(url) or "giobba"),
        port=_opt_int("database.port", raw.get("port"), 65535),
        username=_str("database.adminUsername", raw.get("adminUsername", "")),
        password=_str("database.adminPassword", raw.get("adminPassword", "")),
        tasks_collection=_str("database.tasksCollection", raw.get("tasksCollection", "tasks")),
        jobs_collection=_str("database.jobsCollection", raw.get("jobsCollection", "jobs")),
    )


def _broker(raw: Mapping[str, Any]) -> BrokerConfig:
    _known("broker", raw, _BROKER_KEYS)
    url = _str("broker.url", raw.get("url", ""))
    if url and not url.startswith(("redis://", "rediss://")):
        raise ConfigError("broker.url", "must start with redis:// or rediss://")
    return BrokerConfig(
        url=url,
        port=_opt_int("broker.port", raw.get("port"), 65535),
        db=_opt_int("broker.db", raw.get("db"), 100_000),
        username=_str("broker.adminUsername", raw.get("adminUsername", "")),
        password=_str("broker.adminPassword", raw.get("adminPassword", "")),
    )
