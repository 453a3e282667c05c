"""OutboxEntry <-> plain document, shared by the outbox adapters."""

from dataclasses import asdict, fields
from typing import Any

from giobba_server.domain.callback import OutboxEntry

_FIELDS = [f.name for f in fields(OutboxEntry)]


def entry_doc(entry: OutboxEntry) -> dict[str, Any]:
    return asdict(entry)


def entry_from(doc: dict[str, Any]) -> OutboxEntry:
    return OutboxEntry(**{name: doc[name] for name in _FIELDS if name in doc})
