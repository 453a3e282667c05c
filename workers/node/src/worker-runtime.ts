import { hostname } from "node:os";
import { randomBytes } from "node:crypto";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";

import { type Task as TaskMessage, type WorkerInfo, WorkerInfoSchema, WorkerKind } from "./gen/giobba/v1/task_pb.js";
import { CancelReason, type LeasedTask, WorkerService } from "./gen/giobba/v1/worker_service_pb.js";
import { defaultServer, durationOf, grpcTransport, secondsOf, sleep } from "./connection.js";
import { type JsonObject, parseJsonObject, RawJson, toJsonText } from "./json.js";

export const VERSION = "node/0.1.0";
const FIRST_BEAT_MS = 1000;
const MAX_BACKOFF_MS = 5000;
const REPORT_ATTEMPTS = 8;

/** One attempt of a task, as a handler sees it. */
export interface Task {
  id: string;
  name: string;
  queue: string;
  priority: number;
  /** 1 for the first run. */
  attempt: number;
  /** Parsed payload: integers beyond 2^53 come back rounded (see payloadText). */
  payload: JsonObject;
  /** The payload's JSON text, exactly as submitted. */
  payloadText: string;
  proto: TaskMessage;
}

export interface TaskContext {
  /** Aborted when the task is killed, times out, loses its lease or the worker stops;
   * `signal.reason` is a Cancelled. */
  signal: AbortSignal;
  attempt: number;
}

export type HandlerResult = JsonObject | RawJson | null | undefined | void;
/** Returns (or resolves to) the result object; throws to fail the attempt. */
export type Handler = (ctx: TaskContext, task: Task) => HandlerResult | Promise<HandlerResult>;

/** Throw to fail for good, whatever retries remain. */
export class NoRetry extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoRetry";
  }
}

/** The abort reason of a cancelled task's signal. */
export class Cancelled extends Error {
  constructor(readonly reason: "killed" | "timeout" | "lease lost" | "shutdown" | "cancelled") {
    super(`cancelled: ${reason}`);
    this.name = "Cancelled";
  }
}

export interface WorkerOptions {
  /** host:port; default $GIOBBA_SERVER or 127.0.0.1:50051. */
  server?: string;
  transport?: Transport;
  queues?: string[];
  concurrency?: number;
  /** On stop, seconds running tasks may finish before they are handed back. */
  drainSeconds?: number;
  /** Seconds a cancelled handler may take before its slot is freed anyway. */
  killGraceSeconds?: number;
  pollWaitSeconds?: number;
  id?: string;
  log?: (message: string) => void;
}

interface Run {
  task: Task;
  token: string;
  abort: AbortController;
  done: Promise<void>;
}

type Outcome = { result: string } | { error: string; noRetry: boolean } | "silent";

const REASONS: Record<number, Cancelled["reason"]> = {
  [CancelReason.KILLED]: "killed",
  [CancelReason.TIMEOUT]: "timeout",
  [CancelReason.LEASE_LOST]: "lease lost",
};

/**
 * Long-polls LeaseTasks for as many tasks as it has free slots, runs handlers with an
 * AbortSignal, heartbeats every lease it holds, follows WatchCancellations, and on stop()
 * drains then hands unfinished tasks back with ReleaseTask.
 *
 * Handlers share Node's one thread with the heartbeat: a handler that computes for longer
 * than a lease without awaiting loses its lease. Move such work to a worker_thread.
 */
export class Worker {
  readonly id: string;
  readonly queues: string[];
  readonly concurrency: number;
  private readonly rpc: Client<typeof WorkerService>;
  private readonly handlers = new Map<string, Handler>();
  private readonly running = new Map<string, Run>();
  private readonly stopping = new AbortController(); // stop leasing
  private readonly background = new AbortController(); // heartbeats, cancel stream
  private readonly started = new Date();
  private slotFreed: (() => void) | undefined;
  private completed = 0n;
  private failed = 0n;
  private readonly opts: Required<Pick<WorkerOptions, "drainSeconds" | "killGraceSeconds" | "pollWaitSeconds">>;
  private readonly log: (message: string) => void;

  constructor(options: WorkerOptions = {}) {
    this.queues = options.queues?.length ? options.queues : ["default"];
    this.concurrency = Math.max(options.concurrency ?? 1, 1);
    this.id = options.id ?? `${hostname()}-${process.pid}-node-${randomBytes(4).toString("hex")}`;
    this.opts = {
      drainSeconds: options.drainSeconds ?? 30,
      killGraceSeconds: options.killGraceSeconds ?? 5,
      pollWaitSeconds: options.pollWaitSeconds ?? 30,
    };
    this.log = options.log ?? ((message) => console.error(`${new Date().toISOString()} ${message}`));
    this.rpc = createClient(WorkerService, options.transport ?? grpcTransport(options.server ?? defaultServer()));
  }

  handle(name: string, handler: Handler): this {
    this.handlers.set(name, handler);
    return this;
  }

  /** Graceful stop: no new tasks; running ones drain, then are handed back. */
  stop(): void {
    this.stopping.abort();
    this.wake();
  }

  /** Serves until stop(); resolves once drained. */
  async run(): Promise<void> {
    const beats = this.heartbeats();
    const pushes = this.watchCancellations();
    this.log(`worker ${this.id} serving ${this.queues.join(",")} (concurrency ${this.concurrency})`);
    await this.leaseLoop();
    await this.drain();
    this.background.abort();
    await Promise.allSettled([beats, pushes]);
    await this.beat(); // so the fleet view shows this worker idle
    this.log(`worker ${this.id} stopped`);
  }

  // -- leasing ------------------------------------------------------------------------

  private wake(): void {
    const wake = this.slotFreed;
    this.slotFreed = undefined;
    wake?.();
  }

  private async leaseLoop(): Promise<void> {
    const stop = this.stopping.signal;
    let delay = 0;
    while (!stop.aborted) {
      const free = this.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      let leased: LeasedTask[];
      try {
        const response = await this.rpc.leaseTasks(
          {
            workerId: this.id,
            queues: this.queues,
            maxTasks: free,
            wait: durationOf(this.opts.pollWaitSeconds),
            worker: this.info(),
          },
          { signal: stop, timeoutMs: (this.opts.pollWaitSeconds + 10) * 1000 },
        );
        leased = response.tasks;
        delay = 0;
      } catch (err) {
        if (stop.aborted) return;
        delay = Math.min(Math.max(delay * 2, 200), MAX_BACKOFF_MS);
        this.log(`lease failed (${codeName(err)}); retrying in ${delay} ms`);
        await sleep(delay, stop);
        continue;
      }
      for (const item of leased) this.start(item);
    }
  }

  private start(item: LeasedTask): void {
    const message = item.task!;
    const task: Task = {
      id: message.id,
      name: message.name,
      queue: message.queue,
      priority: message.priority,
      attempt: item.attempt,
      payload: {},
      payloadText: message.payload === "" ? "{}" : message.payload,
      proto: message,
    };
    const abort = new AbortController();
    const run: Run = { task, token: item.leaseToken, abort, done: Promise.resolve() };
    this.running.set(task.id, run);
    run.done = this.execute(run, secondsOf(item.timeout)).finally(() => {
      this.running.delete(task.id);
      this.wake();
    });
  }

  // -- running ------------------------------------------------------------------------

  private async execute(run: Run, timeoutSeconds: number): Promise<void> {
    const timer =
      timeoutSeconds > 0
        ? setTimeout(() => run.abort.abort(new Cancelled("timeout")), timeoutSeconds * 1000)
        : undefined;
    try {
      const outcome = await this.outcome(run);
      if (outcome !== "silent") await this.report(run, outcome);
    } finally {
      clearTimeout(timer);
    }
  }

  private async outcome(run: Run): Promise<Outcome> {
    const { task, abort } = run;
    const handler = this.handlers.get(task.name);
    if (handler === undefined) {
      return { error: `no handler named "${task.name}" on worker ${this.id}`, noRetry: false };
    }
    const call = (async (): Promise<Outcome> => {
      let value: HandlerResult;
      try {
        task.payload = parseJsonObject(task.payloadText);
        value = await handler({ signal: abort.signal, attempt: task.attempt }, task);
      } catch (err) {
        return { error: errorText(err), noRetry: err instanceof NoRetry };
      }
      try {
        return { result: toJsonText(value ?? null, "result") };
      } catch (err) {
        return { error: `result is not JSON: ${errorText(err)}`, noRetry: true };
      }
    })();
    const cancelled = new Promise<"cancelled">((resolve) => {
      if (abort.signal.aborted) resolve("cancelled");
      abort.signal.addEventListener("abort", () => resolve("cancelled"), { once: true });
    });
    let outcome = await Promise.race([call, cancelled]);
    if (outcome === "cancelled") {
      if (!(await settlesWithin(call, this.opts.killGraceSeconds * 1000))) {
        this.log(`handler for ${task.id} ignored cancellation; abandoned`);
      }
      outcome = "silent";
    }
    if (!abort.signal.aborted) return outcome;
    const reason = abort.signal.reason;
    if (reason instanceof Cancelled && reason.reason === "timeout") {
      return { error: "timeout", noRetry: false };
    }
    return "silent"; // killed, lease lost or shutting down: the server has moved on
  }

  private async report(run: Run, outcome: Exclude<Outcome, "silent">): Promise<void> {
    let delay = 200;
    for (let i = 0; i < REPORT_ATTEMPTS; i++) {
      try {
        if ("result" in outcome) {
          await this.rpc.completeTask(
            { taskId: run.task.id, leaseToken: run.token, result: outcome.result },
            { timeoutMs: 30_000 },
          );
          this.completed++;
        } else {
          await this.rpc.failTask(
            { taskId: run.task.id, leaseToken: run.token, error: outcome.error, noRetry: outcome.noRetry },
            { timeoutMs: 30_000 },
          );
          this.failed++;
        }
        return;
      } catch (err) {
        const code = err instanceof ConnectError ? err.code : Code.Unknown;
        if (code === Code.InvalidArgument && "result" in outcome) {
          // The server cannot store the result (too big, say): nothing moved and the lease
          // is still ours, so fail the attempt instead (retried per the task's policy).
          outcome = { error: `result refused by the server: ${messageOf(err)}`, noRetry: false };
          this.log(`task ${run.task.id}: ${outcome.error}`);
          continue;
        }
        if (code === Code.Unavailable || code === Code.DeadlineExceeded) {
          await sleep(delay);
          delay = Math.min(delay * 2, MAX_BACKOFF_MS);
          continue;
        }
        // Aborted: the lease went stale (killed, recovered elsewhere); nothing to do.
        this.log(`report for ${run.task.id} refused: ${codeName(err)} ${messageOf(err)}`);
        return;
      }
    }
    this.log(`gave up reporting ${run.task.id}; its lease will expire`);
  }

  // -- shutdown -----------------------------------------------------------------------

  private async drain(): Promise<void> {
    if (this.running.size === 0) return;
    this.log(`stopping: no new tasks; draining ${this.running.size} for ${this.opts.drainSeconds}s`);
    const all = () => Promise.allSettled([...this.running.values()].map((r) => r.done));
    if (await settlesWithin(all(), this.opts.drainSeconds * 1000)) return;
    const left = [...this.running.values()];
    for (const run of left) {
      run.abort.abort(new Cancelled("shutdown"));
      try {
        await this.rpc.releaseTask({ taskId: run.task.id, leaseToken: run.token }, { timeoutMs: 10_000 });
        this.log(`handed back task ${run.task.id}`);
      } catch (err) {
        this.log(`release of ${run.task.id} refused: ${codeName(err)} ${messageOf(err)}`);
      }
    }
    await settlesWithin(all(), this.opts.killGraceSeconds * 1000);
  }

  // -- heartbeats and cancellations ---------------------------------------------------

  private cancel(taskId: string, reason: CancelReason): void {
    const run = this.running.get(taskId);
    if (run === undefined || run.abort.signal.aborted) return;
    const text = REASONS[reason] ?? "cancelled";
    this.log(`task ${taskId} cancelled: ${text}`);
    run.abort.abort(new Cancelled(text));
  }

  private async heartbeats(): Promise<void> {
    const signal = this.background.signal;
    let interval = FIRST_BEAT_MS;
    while (!signal.aborted) {
      const next = await this.beat();
      interval = next > 0 ? next : Math.min(Math.max(interval * 2, FIRST_BEAT_MS), MAX_BACKOFF_MS);
      await sleep(interval, signal);
    }
  }

  /** One heartbeat with every lease held; returns the interval (ms) asked for, 0 on error. */
  private async beat(): Promise<number> {
    const leases = [...this.running.values()].map((r) => ({ taskId: r.task.id, leaseToken: r.token }));
    try {
      const response = await this.rpc.heartbeat({ worker: this.info(), leases }, { timeoutMs: 5000 });
      for (const c of response.cancellations) this.cancel(c.taskId, c.reason);
      const ms = secondsOf(response.heartbeatInterval) * 1000;
      return ms > 0 ? Math.max(ms, 50) : FIRST_BEAT_MS;
    } catch (err) {
      if (!this.background.signal.aborted) this.log(`heartbeat failed: ${codeName(err)}`);
      return 0;
    }
  }

  private async watchCancellations(): Promise<void> {
    const signal = this.background.signal;
    let delay = 0;
    while (!signal.aborted) {
      let got = false;
      try {
        for await (const item of this.rpc.watchCancellations({ workerId: this.id }, { signal })) {
          got = true;
          if (item.cancellation) this.cancel(item.cancellation.taskId, item.cancellation.reason);
        }
      } catch {
        // Dropped or refused: heartbeat answers carry the same cancellations.
      }
      delay = got ? 200 : Math.min(Math.max(delay * 2, 200), MAX_BACKOFF_MS);
      await sleep(delay, signal);
    }
  }

  private info(): WorkerInfo {
    return create(WorkerInfoSchema, {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      queues: this.queues,
      concurrency: this.concurrency,
      runningTaskIds: [...this.running.keys()],
      completed: this.completed,
      failed: this.failed,
      version: VERSION,
      kind: WorkerKind.WORKER,
      startedAt: timestampFromDate(this.started),
    });
  }
}

/**
 * Whether `promise` settles within `ms`. The timer is cleared as soon as the race is decided:
 * a pending drain or grace timer would keep Node's event loop, and so the process, alive
 * for its full length after the worker has stopped.
 */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const decided = new AbortController();
  const settled = promise.then(() => true, () => true);
  try {
    return await Promise.race([settled, sleep(ms, decided.signal).then(() => false)]);
  } finally {
    decided.abort(); // sleep() clears its timer on abort
  }
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  return text || "failed";
}

function codeName(err: unknown): string {
  return err instanceof ConnectError ? Code[err.code] : String(err);
}

function messageOf(err: unknown): string {
  return err instanceof ConnectError ? err.rawMessage : "";
}
