#!/usr/bin/env node
/**
 * Follows the activity feed: one line per state change, replayed from a cursor, then live.
 *
 *   node dist/watch.js --server 127.0.0.1:50051 [--from CURSOR] [--queue Q]... [--task ID]...
 *
 * Print the last cursor you saw and pass it as --from after a reconnect: nothing is missed.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";

import { parseCli } from "./cli.js";
import { GiobbaClient } from "./client.js";
import { defaultServer } from "./connection.js";
import { ActivityKind, TaskState } from "./gen/giobba/v1/task_pb.js";

const values = parseCli(
  "watch",
  `usage: node dist/watch.js [options]

Follows the activity feed, one line per state change: live, or replayed from --from then live.`,
  {
    server: { type: "string", default: defaultServer(), arg: "HOST:PORT", help: "server address (env GIOBBA_SERVER)" },
    from: { type: "string", arg: "CURSOR", help: "replay from this cursor, then follow live (default: live only)" },
    queue: { type: "string", multiple: true, default: [], arg: "Q", help: "only this queue" },
    task: { type: "string", multiple: true, default: [], arg: "ID", help: "only this task" },
    json: { type: "boolean", default: false, help: "one JSON object per line" },
  },
);

const client = new GiobbaClient(values.server);
const stop = new AbortController();
process.on("SIGINT", () => stop.abort());
process.on("SIGTERM", () => stop.abort());

try {
  for await (const a of client.watch({
    fromCursor: values.from === undefined ? undefined : BigInt(values.from),
    liveOnly: values.from === undefined,
    queues: values.queue,
    taskIds: values.task,
    signal: stop.signal,
  })) {
    const time = a.time ? timestampDate(a.time).toISOString() : "";
    if (values.json) {
      console.log(JSON.stringify({
        cursor: a.cursor.toString(), time, task_id: a.taskId, name: a.name, queue: a.queue,
        kind: ActivityKind[a.kind], old_state: TaskState[a.oldState], new_state: TaskState[a.newState],
        worker_id: a.workerId, attempt: a.attempt, error: a.error,
      }));
    } else {
      const error = a.error ? `  ${a.error}` : "";
      console.log(
        `${a.cursor} ${time} ${a.taskId} ${a.name} [${a.queue}] ${TaskState[a.oldState]} -> ${TaskState[a.newState]}` +
          ` (${ActivityKind[a.kind]}, attempt ${a.attempt}${a.workerId ? `, ${a.workerId}` : ""})${error}`,
      );
    }
  }
} catch (err) {
  if (!stop.signal.aborted) throw err;
}
