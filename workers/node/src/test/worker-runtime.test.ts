import assert from "node:assert/strict";
import { test } from "node:test";

import { Code, ConnectError, createRouterTransport, type HandlerContext } from "@connectrpc/connect";

import { WorkerService } from "../gen/giobba/v1/worker_service_pb.js";
import { type Handler, Worker } from "../worker-runtime.js";

/** Resolves when the call's signal aborts: a long poll or stream held open until the worker drops it. */
function untilAborted(ctx: HandlerContext): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) return resolve();
    ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * An in-memory WorkerService that leases one task named "work", then long-polls with nothing
 * more; `calls` records what the worker reported. No server process needed. With `refusal`,
 * CompleteTask is refused with INVALID_ARGUMENT and that message.
 */
function fakeServer(calls: string[], refusal?: string) {
  let leased = false;
  return createRouterTransport(({ service }) => {
    service(WorkerService, {
      async leaseTasks(_req, ctx) {
        if (!leased) {
          leased = true;
          return { tasks: [{ task: { id: "t1", name: "work", queue: "default" }, leaseToken: "lease-1", attempt: 1 }] };
        }
        await untilAborted(ctx);
        return { tasks: [] };
      },
      heartbeat: () => ({ heartbeatInterval: { seconds: 60n } }),
      async *watchCancellations(_req, ctx) {
        await untilAborted(ctx);
      },
      completeTask(req) {
        calls.push(`complete ${req.taskId}`);
        if (refusal !== undefined) throw new ConnectError(refusal, Code.InvalidArgument);
        return {};
      },
      failTask(req) {
        calls.push(`fail ${req.taskId} ${req.leaseToken} noRetry=${req.noRetry}: ${req.error}`);
        return {};
      },
      releaseTask(req) {
        calls.push(`release ${req.taskId}`);
        return {};
      },
    });
  });
}

const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;

/** Runs a worker whose one task's handler calls stop(); returns the server calls seen. */
async function runStopping(
  handler: Handler,
  drainSeconds: number,
  killGraceSeconds: number,
  refusal?: string,
): Promise<string[]> {
  const calls: string[] = [];
  const before = timers();
  const worker = new Worker({
    transport: fakeServer(calls, refusal),
    drainSeconds,
    killGraceSeconds,
    log: () => {},
  });
  worker.handle("work", (ctx, task) => {
    worker.stop();
    return handler(ctx, task);
  });
  await worker.run();
  // A timer still pending here keeps the process alive for its full length after stop().
  assert.equal(timers(), before, `timers left pending: ${process.getActiveResourcesInfo()}`);
  return calls;
}

test("a worker that drained in time leaves no drain timer behind", async () => {
  const calls = await runStopping(
    async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { ok: true };
    },
    10,
    10,
  );
  assert.deepEqual(calls, ["complete t1"]);
});

test("a handler that honours the shutdown cancellation leaves no grace timer behind", async () => {
  const calls = await runStopping(
    (ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(undefined))),
    0.05,
    10,
  );
  assert.deepEqual(calls, ["release t1"]);
});

test("a result the server refuses fails the attempt on the same lease, to be retried", async () => {
  const calls = await runStopping(() => ({ big: "x" }), 10, 10, "result: is 9 bytes, over the limit");
  assert.deepEqual(calls, [
    "complete t1",
    "fail t1 lease-1 noRetry=false: result refused by the server: result: is 9 bytes, over the limit",
  ]);
});
