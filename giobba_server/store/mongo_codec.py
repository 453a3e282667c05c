"""Task <-> MongoDB document.

The shared codec's document, with the id as `_id` and times as ISO-8601 text: BSON dates
keep only milliseconds, and a task must come back exactly as it was saved (the SQLite
store keeps microseconds too). Payload and result stay JSON text, so keys with `.` or a
leading `$` never meet MongoDB's field-name rules. The encoded size is checked here, so a
document over the 16 MiB limit is refused before any write starts.
"""

from datetime import datetime
from typing import Any

import bson

from giobba_server.domain.document import refuse_oversized
from giobba_server.domain.task import Task
from giobba_server.store.codec import from_doc, to_doc

# Bookkeeping fields that are not part of a Task: the insert that wrote the document
# (so a failed insert undoes only its own documents) and the save that last wrote it.
BATCH_FIELD = "_batch"
WRITE_FIELD = "_w"

Document = dict[str, Any]


def to_mongo(task: Task, **marks: str) -> Document:
    refuse_oversized(task)  # cheap estimate first: never BSON-encode a 40 MB task
    doc = to_doc(task)
    for key, value in doc.items():
        if isinstance(value, datetime):
            doc[key] = value.isoformat()
    doc["_id"] = doc.pop("id")
    doc.update(marks)
    refuse_oversized(task, len(bson.encode(doc)))
    return doc


def from_mongo(doc: Document) -> Task:
    values = dict(doc)
    values["id"] = values.pop("_id")
    return from_doc(values, datetime.fromisoformat)
