/**
 * Giobba's reference handlers, with the same names and meaning as
 * workers/python/handlers.py: the shared vocabulary of the docs and the conformance kit.
 */
import { sleep as pause } from "./connection.js";
import { RawJson } from "./json.js";
import { Cancelled, NoRetry, type Handler, type Worker } from "./worker-runtime.js";

/** The result is the payload, unchanged (its text passed through: nothing is rounded). */
export const echo: Handler = (_ctx, task) => new RawJson(task.payloadText);

/** Does nothing: for throughput measurements. */
export const noop: Handler = () => ({});

/** Sleeps payload `seconds` (default 1), stopping early when the task is cancelled. */
export const sleep: Handler = async (ctx, task) => {
  const seconds = Number(task.payload.seconds ?? 1);
  await pause(seconds * 1000, ctx.signal);
  if (ctx.signal.aborted) {
    const reason = ctx.signal.reason instanceof Cancelled ? ctx.signal.reason.reason : "cancelled";
    throw new Error(`cancelled after starting a ${seconds}s sleep: ${reason}`);
  }
  return { slept: seconds };
};

/** Always fails with payload `message`; for good (no retry) with `"no_retry": true`. */
export const fail: Handler = (_ctx, task) => {
  const raw = task.payload.message;
  const message = raw === undefined ? "failed on purpose" : typeof raw === "string" ? raw : JSON.stringify(raw);
  if (task.payload.no_retry) throw new NoRetry(message);
  throw new Error(message);
};

export function register(worker: Worker): Worker {
  return worker.handle("echo", echo).handle("noop", noop).handle("sleep", sleep).handle("fail", fail);
}
