"""MongoDB repository: the production durable record, on pymongo's async API.

It must run on MongoDB and on FerretDB alike, so it needs no transactions, no TTL indexes
and no atomic find-and-modify:

- insert is all or nothing by undoing: an ordered insert_many marks each document with a
  token of its batch; if it fails part-way, the documents this batch wrote are deleted
  before AlreadyExists (naming the id) or Unavailable is raised.
- save is version-guarded: a replace filtered on `version < new`, so writes that race
  across servers never move a task backwards (atomic on MongoDB; FerretDB: see below).
- writes go through one queue per repository, like the SQLite store's group commit:
  one write in flight at a time (FerretDB's SQLite backend answers concurrent writers with
  "database is locked"), and saves that queue up meanwhile go out as one ordered
  bulk_write. Every caller awaits its own outcome; a write that failed is never reported
  as done.

FerretDB (v1.24, SQLite backend) serves only a filter that is exactly `{_id: <string>}`
from an index (and only with the lookup fix our test harness builds in); any other filter
scans the whole collection, and it evaluates an update's filter and its write as separate
steps anyway. So on FerretDB a save reads the stored version by `_id`, then replaces by
`_id` — exact within one server (writes are serialized here), not across servers — and
reads of several ids are one `_id` lookup each. On MongoDB the guard is one atomic
filtered replace, batched, and `$in` reads serve from the index.

Children are found through a side collection (`<tasks>_children`: parent id -> child ids),
kept by insert, so settling a parent's children is an `_id` lookup on every server, not a
query on `parent_id` (which FerretDB would answer with a scan per finished task). The
entry is written before the child itself, so a crash in between leaves only a dangling id,
which reads ignore.

Driver errors become `Unavailable`; pymongo reconnects by itself, and nothing here caches
a connection, so the same repository works again once the server is back.
"""

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from giobba_server.config import Config, DatabaseConfig
from giobba_server.domain.errors import AlreadyExists, Unavailable
from giobba_server.domain.ports import Page, Repository, TaskFilter, page_token
from giobba_server.domain.task import Task, TaskState
from giobba_server.store.mongo_codec import (
    BATCH_FIELD,
    WRITE_FIELD,
    Document,
    from_mongo,
    to_mongo,
)
from giobba_server.waits import wait_event

T = TypeVar("T")
log = logging.getLogger("giobba.store.mongo")

SELECT_TIMEOUT_MS = 3_000  # a down server answers Unavailable in about this long
CONNECT_TIMEOUT_MS = 3_000
SOCKET_TIMEOUT_MS = 30_000  # a 15 MiB document on a slow server still fits
BUSY_BUDGET = 5.0  # seconds to retry FerretDB's "database is locked" before giving up
MAX_GROUP = 500  # saves per bulk_write
_LIVE = [TaskState.PENDING.value, TaskState.RUNNING.value]
_INDEXES: list[list[tuple[str, int]]] = [
    [("state", ASCENDING), ("queue", ASCENDING), ("seq", DESCENDING)],
    [("seq", DESCENDING), ("_id", DESCENDING)],
    [("parent_id", ASCENDING), ("seq", ASCENDING)],
    [("job_id", ASCENDING), ("seq", DESCENDING)],
    [("name", ASCENDING), ("seq", DESCENDING)],
    [("created_at", ASCENDING)],
]


async def open_mongo(config: Config, closers: list[Callable[[], Awaitable[None]]]) -> Repository:
    """Connect, detect FerretDB, create the indexes; the repository closes with `closers`."""
    db = config.database
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        with_port(db.url, db.port), **client_options(db)
    )
    repo = MongoRepository(client, db.name, db.tasks_collection)
    try:
        await repo.open()
    except BaseException:
        await client.close()
        raise
    log.info(
        "repository: MongoDB at %s, database %s, collection %s%s",
        redact(db.url),
        db.name,
        db.tasks_collection,
        " (FerretDB)" if repo.ferretdb else "",
    )
    closers.append(repo.close)
    return repo


def client_options(db: DatabaseConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": SELECT_TIMEOUT_MS,
        "connectTimeoutMS": CONNECT_TIMEOUT_MS,
        "socketTimeoutMS": SOCKET_TIMEOUT_MS,
        "appname": "giobba",
    }
    if db.username:
        options["username"] = db.username
    if db.password:
        options["password"] = db.password
    return options


def with_port(url: str, port: int | None) -> str:
    """The URL with every host's port set to `port` (GIOBBA_DATABASE_PORT), if given."""
    if port is None or not url.startswith("mongodb://"):
        return url  # mongodb+srv:// names no ports: DNS gives them
    rest = url.removeprefix("mongodb://")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = authority.rpartition("@")
    ported = ",".join(_host_with_port(host, port) for host in hosts.split(","))
    return f"mongodb://{userinfo}{at}{ported}{tail}"


def _host_with_port(host: str, port: int) -> str:
    if host.startswith("["):  # [ipv6]:port
        return f"{host[: host.index(']') + 1]}:{port}"
    return f"{host.partition(':')[0]}:{port}"


def redact(url: str) -> str:
    """The URL without its user:password, for logs."""
    scheme, sep, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{tail}"


@dataclass(frozen=True)
class _Save:
    task: Task
    doc: Document  # carries a WRITE_FIELD token unique to this save


_Write = _Save | Callable[[], Awaitable[Any]]


class MongoRepository:
    def __init__(self, client: AsyncMongoClient[Document], database: str, tasks: str) -> None:
        self._client = client
        self._tasks: AsyncCollection[Document] = client[database][tasks]
        self._children: AsyncCollection[Document] = client[database][f"{tasks}_children"]
        self.ferretdb = False
        self._closing = asyncio.Event()
        self._pending: list[tuple[_Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        info = await self._call(lambda: self._client.admin.command("buildInfo"))
        self.ferretdb = "ferretdbVersion" in info
        for keys in _INDEXES:
            await self._call(functools.partial(self._tasks.create_index, keys))

    async def close(self) -> None:
        self._closing.set()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._client.close()

    # -- driver calls ------------------------------------------------------------------

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one driver call; retry FerretDB's lock contention; map errors to ours."""
        deadline = time.monotonic() + BUSY_BUDGET
        delay = 0.005
        while True:
            try:
                return await fn()
            except OperationFailure as exc:
                if not _busy(exc) or time.monotonic() + delay > deadline:
                    raise Unavailable(f"mongodb: {_reason(exc)}") from exc
            except ConnectionFailure as exc:
                raise Unavailable(f"mongodb unreachable: {_reason(exc)}") from exc
            except PyMongoError as exc:
                raise Unavailable(f"mongodb: {_reason(exc)}") from exc
            # Back off, but never hold up close().
            await wait_event(self._closing, delay)
            delay = min(delay * 2, 0.2)

    # -- the write queue ---------------------------------------------------------------

    async def _write(self, item: _Write) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            for group in _groups(batch, merge_saves=not self.ferretdb):
                await self._run(group)

    async def _run(self, group: list[tuple[_Write, asyncio.Future[Any]]]) -> None:
        try:
            outcomes = await self._apply([item for item, _ in group])
        except Exception as exc:  # the whole group failed: every caller hears it
            outcomes = [exc] * len(group)
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _apply(self, items: list[_Write]) -> list[Any]:
        saves = [item for item in items if isinstance(item, _Save)]
        if len(saves) == len(items):
            return await self._save_bulk(saves)
        (write,) = items  # anything but a save runs alone
        assert not isinstance(write, _Save)
        return [await write()]

    # -- port: writes ------------------------------------------------------------------

    async def insert(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        token = uuid.uuid4().hex
        docs = [to_mongo(task, **{BATCH_FIELD: token}) for task in tasks]
        by_parent = _by_parent(tasks)
        # Linked first and never unlinked: an id whose insert failed dangles harmlessly,
        # while unlinking could orphan an existing child resubmitted with the same id.
        await self._write(lambda: self._call(lambda: self._link_children(by_parent)))
        await self._write(lambda: self._call(lambda: self._insert_docs(docs, token)))

    async def _link_children(self, by_parent: dict[str, list[str]]) -> None:
        for parent, ids in by_parent.items():
            await self._children.update_one(
                {"_id": parent}, {"$addToSet": {"ids": {"$each": ids}}}, upsert=True
            )

    async def _insert_docs(self, docs: list[Document], token: str) -> None:
        try:
            await self._tasks.insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            # Ordered: exactly the first nInserted documents are in, all of them ours.
            await self._delete_ids([d["_id"] for d in docs[: exc.details.get("nInserted", 0)]])
            duplicate = _duplicate(exc, docs)
            if duplicate:
                raise AlreadyExists(f"task {duplicate} already exists") from None
            raise
        except ServerSelectionTimeoutError:
            raise  # nothing was sent
        except (AutoReconnect, ConnectionFailure):
            await self._undo_unknown([d["_id"] for d in docs], token)
            raise

    async def _undo_unknown(self, ids: list[str], token: str) -> None:
        """After a lost connection: delete whatever of this batch made it, if we can."""
        try:
            await self._tasks.delete_many({"_id": {"$in": ids}, BATCH_FIELD: token})
        except PyMongoError as exc:
            log.warning("could not undo a failed insert of %d tasks: %s", len(ids), exc)

    async def _delete_ids(self, ids: list[str]) -> None:
        if ids:
            await self._tasks.delete_many({"_id": {"$in": ids}})

    async def delete(self, task_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(task_ids))
        await self._write(lambda: self._call(lambda: self._delete_ids(ids)))

    async def save(self, task: Task) -> bool:
        doc = to_mongo(task, **{WRITE_FIELD: uuid.uuid4().hex})
        saved: bool = await self._write(_Save(task, doc))
        return saved

    async def _save_bulk(self, saves: list[_Save]) -> list[bool]:
        if self.ferretdb:
            return [await self._save_by_id(save) for save in saves]
        ops = [
            ReplaceOne({"_id": s.task.id, "version": {"$lt": s.task.version}}, s.doc) for s in saves
        ]
        result = await self._call(lambda: self._tasks.bulk_write(ops, ordered=True))
        if result.matched_count in (0, len(saves)):
            return [result.matched_count > 0] * len(saves)
        # Some matched: the write token on each document says which ones.
        ids = [s.task.id for s in saves]
        found = await self._call(
            lambda: self._tasks.find({"_id": {"$in": ids}}, {WRITE_FIELD: 1}).to_list()
        )
        tokens = {d["_id"]: d.get(WRITE_FIELD) for d in found}
        return [tokens.get(s.task.id) == s.doc[WRITE_FIELD] for s in saves]

    async def _save_by_id(self, save: _Save) -> bool:
        """FerretDB: the version check and the replace as two `_id`-only steps."""
        stored = await self._call(
            lambda: self._tasks.find_one({"_id": save.task.id}, {"version": 1})
        )
        if stored is None or int(stored.get("version", 0)) >= save.task.version:
            return False
        await self._call(lambda: self._tasks.replace_one({"_id": save.task.id}, save.doc))
        return True

    # -- port: reads -------------------------------------------------------------------

    async def get(self, task_id: str) -> Task | None:
        doc = await self._call(lambda: self._tasks.find_one({"_id": task_id}))
        return None if doc is None else from_mongo(doc)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Task]:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}
        if self.ferretdb:
            found = await asyncio.gather(*(self.get(task_id) for task_id in ids))
            return {task.id: task for task in found if task is not None}
        docs = await self._call(lambda: self._tasks.find({"_id": {"$in": ids}}).to_list())
        tasks = [from_mongo(doc) for doc in docs]
        return {task.id: task for task in tasks}

    async def query(self, flt: TaskFilter, limit: int, token: str) -> Page:
        where = _filter(flt)
        if token:
            seq_text, _, last_id = token.partition(":")
            seq = int(seq_text)
            where["$or"] = [{"seq": {"$lt": seq}}, {"seq": seq, "_id": {"$lt": last_id}}]
        # FerretDB answers a find in one message, however large (a page of 14 MiB payloads
        # passes its 48 MB cap): there, list the ids, then read the documents one by one.
        # MongoDB itself splits batches at 16 MiB.
        projection = {"_id": 1} if self.ferretdb else None
        order = [("seq", DESCENDING), ("_id", DESCENDING)]
        cursor = self._tasks.find(where, projection).sort(order).limit(limit + 1)
        docs = await self._call(cursor.to_list)
        more = len(docs) > limit
        if self.ferretdb:
            found = await self.get_many([doc["_id"] for doc in docs[:limit]])
            tasks = [found[doc["_id"]] for doc in docs[:limit] if doc["_id"] in found]
        else:
            tasks = [from_mongo(doc) for doc in docs[:limit]]
        return Page(tasks, page_token(tasks[-1]) if more and tasks else "")

    async def children(self, parent_id: str) -> list[Task]:
        entry = await self._call(lambda: self._children.find_one({"_id": parent_id}))
        if entry is None:
            return []
        found = await self.get_many([str(i) for i in entry.get("ids", [])])
        return sorted(found.values(), key=lambda t: (t.seq, t.id))

    async def record_callback(self, task_id: str, status: str, attempts: int, error: str) -> None:
        fields: dict[str, Any] = {
            "callback_status": status,
            "callback_attempts": attempts,
            "callback_error": error,
        }
        await self.run_write(lambda: self._tasks.update_one({"_id": task_id}, {"$set": fields}))

    async def run_write(self, fn: Callable[[], Awaitable[T]]) -> T:
        """One driver write through this repository's write queue (FerretDB's SQLite
        backend refuses concurrent writers), with its busy retries and error mapping."""
        result: T = await self._write(lambda: self._call(fn))
        return result

    async def run_read(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await self._call(fn)

    def collection(self, suffix: str) -> AsyncCollection[Document]:
        """A side collection named after the tasks collection (`tasks_outbox`, ...)."""
        return self._tasks.database[f"{self._tasks.name}_{suffix}"]

    async def live(self, after_id: str, limit: int) -> list[Task]:
        where = {"state": {"$in": _LIVE}, "_id": {"$gt": after_id}}
        cursor = self._tasks.find(where).sort("_id", ASCENDING).limit(limit)
        docs = await self._call(cursor.to_list)
        return [from_mongo(doc) for doc in docs]


def _groups(
    batch: list[tuple[_Write, asyncio.Future[Any]]], merge_saves: bool
) -> list[list[tuple[_Write, asyncio.Future[Any]]]]:
    """Runs of saves (distinct ids, so each result is unambiguous); anything else alone."""
    groups: list[list[tuple[_Write, asyncio.Future[Any]]]] = []
    ids: set[str] = set()
    for entry in batch:
        item = entry[0]
        last = groups[-1] if groups else None
        if (
            merge_saves
            and isinstance(item, _Save)
            and last is not None
            and isinstance(last[0][0], _Save)
            and item.task.id not in ids
            and len(last) < MAX_GROUP
        ):
            last.append(entry)
        else:
            groups.append([entry])
            ids = set()
        if isinstance(item, _Save):
            ids.add(item.task.id)
    return groups


def _by_parent(tasks: Sequence[Task]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for task in tasks:
        if task.parent_id:
            out.setdefault(task.parent_id, []).append(task.id)
    return out


def _filter(flt: TaskFilter) -> dict[str, Any]:
    where: dict[str, Any] = {}
    if flt.states:
        where["state"] = {"$in": sorted(s.value for s in flt.states)}
    for key in ("queue", "name", "parent_id", "job_id"):
        value = getattr(flt, key)
        if value:
            where[key] = value
    return where


def _duplicate(exc: BulkWriteError, docs: list[Document]) -> str:
    for error in exc.details.get("writeErrors", []):
        if error.get("code") == 11000:
            return str(docs[error["index"]]["_id"])
    return ""


def _busy(exc: OperationFailure) -> bool:
    """FerretDB's SQLite backend refusing a write while another holds the lock."""
    text = str(exc.details or exc)
    return "database is locked" in text or "SQLITE_BUSY" in text


def _reason(exc: PyMongoError) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."
