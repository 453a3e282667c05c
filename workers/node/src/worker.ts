#!/usr/bin/env node
/**
 * Serves the reference handlers (echo, noop, sleep, fail):
 *
 *   node dist/worker.js --server 127.0.0.1:50051 --queues default --concurrency 4 --drain 30
 *
 * SIGINT/SIGTERM: stop leasing, let running tasks finish within --drain seconds, hand the
 * rest back. A second signal exits at once (their leases lapse on the server).
 */
import { parseArgs } from "node:util";

import { defaultServer } from "./connection.js";
import { register } from "./handlers.js";
import { Worker } from "./worker-runtime.js";

const { values } = parseArgs({
  options: {
    server: { type: "string", default: defaultServer() },
    queues: { type: "string", default: "default" },
    concurrency: { type: "string", default: "1" },
    drain: { type: "string", default: "30" },
  },
});

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
