"""MongoOutbox: the production callback outbox, a side collection `<tasks>_outbox`.

Every hot-path operation is keyed by `_id` (the delivery id), the only filter FerretDB
serves from an index; `pending` sorts by due time, which MongoDB serves from an index and
FerretDB answers with a scan of a collection that only holds unsettled entries. Writes go
through the repository's write queue (one writer at a time, busy retries on FerretDB).
"""

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING

from giobba_server.domain.callback import OutboxEntry
from giobba_server.store.mongo import MongoRepository
from giobba_server.store.outbox_codec import entry_doc, entry_from


def _doc(entry: OutboxEntry) -> dict[str, Any]:
    doc = entry_doc(entry)
    doc["_id"] = doc.pop("id")
    return doc


def _entry(doc: dict[str, Any]) -> OutboxEntry:
    values = dict(doc)
    values["id"] = values.pop("_id")
    return entry_from(values)


class MongoOutbox:
    def __init__(self, repo: MongoRepository) -> None:
        self._repo = repo
        self._entries = repo.collection("outbox")

    async def open(self) -> None:
        await self._repo.run_write(lambda: self._entries.create_index([("due_ms", ASCENDING)]))

    async def add(self, entry: OutboxEntry) -> None:
        doc = _doc(entry)
        key = doc.pop("_id")
        await self._repo.run_write(
            lambda: self._entries.update_one({"_id": key}, {"$setOnInsert": doc}, upsert=True)
        )

    async def get(self, entry_id: str) -> OutboxEntry | None:
        doc = await self._repo.run_read(lambda: self._entries.find_one({"_id": entry_id}))
        return None if doc is None else _entry(doc)

    async def update(self, entry: OutboxEntry) -> None:
        doc = _doc(entry)
        await self._repo.run_write(lambda: self._entries.replace_one({"_id": doc["_id"]}, doc))

    async def remove(self, entry_id: str) -> None:
        await self._repo.run_write(lambda: self._entries.delete_one({"_id": entry_id}))

    async def pending(self, limit: int) -> Sequence[OutboxEntry]:
        cursor = self._entries.find({}).sort([("due_ms", ASCENDING), ("_id", ASCENDING)])
        docs = await self._repo.run_read(lambda: cursor.limit(limit).to_list())
        return [_entry(doc) for doc in docs]
