"""The command line shared by bench/peers_celery.py and bench/peers_rq.py.

They run with `.venv-peers/bin/python` (never the project's venv, which must not depend
on Celery or RQ), started by bench/peers.py with the peer's Redis URL in
`PEERS_REDIS_URL`:

    python bench/peers_rq.py enqueue --tasks 2000 --batch 500 --out ids.json
    python bench/peers_rq.py verify --ids ids.json

`enqueue` times only the enqueue calls (not interpreter start-up or imports, which
Giobba's in-process client does not pay either) and writes each task's id and the Redis
key of its completion record, which bench/peers.py watches. `verify` checks every task
through the peer's own public API: done, and with the no-op's `{}` result.
Stdlib only, so that both venvs can import it.
"""

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

Enqueue = Callable[[int, int], list[str]]  # (tasks, batch) -> ids in enqueue order
RecordKey = Callable[[str], str]  # id -> Redis key of its result / job record
Verify = Callable[[list[str]], list[str]]  # ids -> one problem per bad task


def main(enqueue: Enqueue, record_key: RecordKey, verify: Verify) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["enqueue", "verify"])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, help="enqueue: where to write ids and keys")
    parser.add_argument("--ids", type=Path, help="verify: the file enqueue wrote")
    args = parser.parse_args()
    if args.action == "enqueue":
        start = time.perf_counter()
        ids = enqueue(args.tasks, args.batch)
        seconds = time.perf_counter() - start
        keys = [record_key(i) for i in ids]
        args.out.write_text(json.dumps({"ids": ids, "keys": keys}))
        print(json.dumps({"enqueued": len(ids), "seconds": seconds}))
        return
    ids = json.loads(args.ids.read_text())["ids"]
    problems = verify(ids)
    if problems:
        raise SystemExit(f"{len(problems)} of {len(ids)} tasks not done: {problems[:5]}")
    print(json.dumps({"verified": len(ids)}))
