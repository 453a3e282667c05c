#!/usr/bin/env node
/**
 * Serves the reference handlers (echo, noop, sleep, fail):
 *
 *   node dist/worker.js --server 127.0.0.1:50051 --queues default --concurrency 4 --drain 30
 *
 * SIGINT/SIGTERM: stop leasing, let running tasks finish within --drain seconds, hand the
 * rest back. A second signal exits at once (their leases lapse on the server).
 */
import { parseCli } from "./cli.js";
import { defaultServer } from "./connection.js";
import { register } from "./handlers.js";
import { Worker } from "./worker-runtime.js";

const values = parseCli(
  "worker",
  `usage: node dist/worker.js [options]

Serves the reference handlers (echo, noop, sleep, fail) until SIGINT/SIGTERM.`,
  {
    server: { type: "string", default: defaultServer(), arg: "HOST:PORT", help: "server address (env GIOBBA_SERVER)" },
    queues: { type: "string", default: "default", arg: "Q1,Q2", help: "comma-separated queues to serve" },
    concurrency: { type: "string", default: "1", arg: "N", help: "tasks run at once" },
    drain: {
      type: "string",
      default: "30",
      arg: "SECONDS",
      help: "on SIGINT/SIGTERM, how long running tasks may finish before they are handed back",
    },
  },
);

const worker = register(
  new Worker({
    server: values.server,
    queues: values.queues!.split(","),
    concurrency: Number(values.concurrency),
    drainSeconds: Number(values.drain),
  }),
);

let signals = 0;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (++signals > 1) {
      console.error("second signal: exiting without draining");
      process.exit(1);
    }
    worker.stop();
  });
}

await worker.run();
process.exit(0);
