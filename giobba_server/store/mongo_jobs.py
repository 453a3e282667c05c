"""MongoDB job store (`database.jobsCollection`, default "jobs").

Only single-document operations: an insert, a read, and an update filtered on the expected
version. On MongoDB that update is an atomic compare-and-set; on FerretDB it may not be
under concurrency, which is fine because firing a time once is the broker lock's job (with
the deterministic run id as the backstop), never this store's.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from giobba_server.config import Config
from giobba_server.domain.clock import to_ms
from giobba_server.domain.errors import AlreadyExists, Unavailable
from giobba_server.domain.job import Job
from giobba_server.domain.job_ports import JobPage
from giobba_server.store.job_codec import job_from_doc, job_to_doc

Doc = dict[str, Any]


def _aware(value: Any) -> datetime:
    moment: datetime = value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _decode(doc: Doc) -> Job:
    return job_from_doc(doc, _aware)


def _encode(job: Job) -> Doc:
    doc = job_to_doc(job)
    doc["_id"] = job.id
    return doc


class MongoJobRepository:
    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._jobs = collection

    async def ensure_indexes(self) -> None:
        try:
            await self._jobs.create_index([("is_active", ASCENDING), ("next_ms", ASCENDING)])
            await self._jobs.create_index([("created_ms", ASCENDING), ("_id", ASCENDING)])
        except PyMongoError as exc:
            raise Unavailable(f"mongodb: {exc}") from exc

    async def insert(self, job: Job) -> None:
        try:
            await self._jobs.insert_one(_encode(job))
        except DuplicateKeyError:
            raise AlreadyExists(f"job {job.id} already exists") from None
        except PyMongoError as exc:
            raise Unavailable(f"mongodb: {exc}") from exc

    async def get(self, job_id: str) -> Job | None:
        try:
            doc = await self._jobs.find_one({"_id": job_id})
        except PyMongoError as exc:
            raise Unavailable(f"mongodb: {exc}") from exc
        return _decode(doc) if doc is not None else None

    async def page(self, limit: int, token: str) -> JobPage:
        query: Doc = {}
        if token:
            created, _, last_id = token.partition(":")
            ms = int(created)
            query = {
                "$or": [{"created_ms": {"$gt": ms}}, {"created_ms": ms, "_id": {"$gt": last_id}}]
            }
        cursor = self._jobs.find(query).sort([("created_ms", 1), ("_id", 1)]).limit(limit + 1)
        docs = await self._all(cursor)
        jobs = [_decode(d) for d in docs[:limit]]
        more = len(docs) > limit and jobs
        return JobPage(jobs, f"{to_ms(jobs[-1].created_at)}:{jobs[-1].id}" if more else "")

    async def save(self, job: Job) -> bool:
        try:
            result = await self._jobs.replace_one(
                {"_id": job.id, "version": job.version - 1}, _encode(job)
            )
        except PyMongoError as exc:
            raise Unavailable(f"mongodb: {exc}") from exc
        return result.matched_count == 1

    async def delete(self, job_id: str) -> bool:
        try:
            result = await self._jobs.delete_one({"_id": job_id})
        except PyMongoError as exc:
            raise Unavailable(f"mongodb: {exc}") from exc
        return result.deleted_count == 1

    async def upcoming(self, until: datetime, limit: int) -> list[Job]:
        query = {"is_active": True, "next_ms": {"$ne": None, "$lte": to_ms(until)}}
        cursor = self._jobs.find(query).sort("next_ms", 1).limit(limit)
        return [_decode(d) for d in await self._all(cursor)]

    async def _all(self, cursor: Any) -> "list[Doc]":
        try:
            docs: list[Doc] = await cursor.to_list()
        except PyMongoError as exc:
            raise Unavailable(f"mongodb: {exc}") from exc
        return docs

    async def close(self) -> None:
        """The client is closed by the closer `open_mongo_jobs` registered."""


def _client(config: Config) -> AsyncMongoClient[Doc]:
    db = config.database
    options: Doc = {"tz_aware": True, "tzinfo": UTC, "serverSelectionTimeoutMS": 10_000}
    if db.port is not None:
        options["port"] = db.port
    if db.username:
        options["username"] = db.username
        options["password"] = db.password
    return AsyncMongoClient(db.url, **options)


async def open_mongo_jobs(
    config: Config, closers: list[Callable[[], Awaitable[None]]]
) -> MongoJobRepository:
    client = _client(config)
    closers.append(client.close)
    database = client[config.database.name]
    repo = MongoJobRepository(database[config.database.jobs_collection])
    await repo.ensure_indexes()
    return repo
