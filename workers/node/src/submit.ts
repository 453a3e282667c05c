#!/usr/bin/env node
/**
 * Submits tasks read as JSON lines from stdin, one task per line:
 *   {"name": "echo", "payload": {...}, "queue": "q", "priority": 5, "max_retries": 2}
 * and prints each new task id on a line of its own, in input order. Batches of 500 go in
 * one AddTasks call each.
 *
 *   node dist/submit.js --server 127.0.0.1:50051 < tasks.jsonl
 */
import { createInterface } from "node:readline";
import { parseCli } from "./cli.js";
import { GiobbaClient, type TaskRequest } from "./client.js";
import { defaultServer } from "./connection.js";
import type { JsonObject } from "./json.js";

const values = parseCli(
  "submit",
  `usage: node dist/submit.js [options] < tasks.jsonl

Submits one task per JSON line of stdin and prints each new task id, in input order.`,
  {
    server: { type: "string", default: defaultServer(), arg: "HOST:PORT", help: "server address (env GIOBBA_SERVER)" },
    batch: { type: "string", default: "500", arg: "N", help: "tasks per AddTasks call" },
  },
);

interface Line {
  name: string;
  payload?: JsonObject;
  queue?: string;
  priority?: number;
  max_retries?: number;
}

const client = new GiobbaClient(values.server);
const size = Number(values.batch);
let batch: TaskRequest[] = [];

async function flush(): Promise<void> {
  if (batch.length === 0) return;
  const tasks = await client.submitMany(batch);
  process.stdout.write(tasks.map((t) => `${t.id}\n`).join(""));
  batch = [];
}

for await (const text of createInterface({ input: process.stdin })) {
  if (text.trim() === "") continue;
  const line = JSON.parse(text) as Line;
  batch.push({
    name: line.name,
    payload: line.payload,
    queue: line.queue,
    priority: line.priority,
    maxRetries: line.max_retries,
  });
  if (batch.length >= size) await flush();
}
await flush();
