import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Transport } from "@connectrpc/connect";

import {
  type Activity,
  StartMode,
  type Task,
  type TaskSpec,
  TaskSpecSchema,
  TaskState,
} from "./gen/giobba/v1/task_pb.js";
import { TaskService } from "./gen/giobba/v1/task_service_pb.js";
import { defaultServer, durationOf, grpcTransport } from "./connection.js";
import { type JsonObject, parseJsonObject, RawJson, toJsonText } from "./json.js";

export { Code, ConnectError } from "@connectrpc/connect";
export { TaskState };

export interface SubmitOptions {
  /** Client-chosen UUID; the server assigns one when omitted. */
  id?: string;
  queue?: string;
  /** 0-10, higher first. */
  priority?: number;
  /** Earliest start. */
  eta?: Date;
  /** Wait in PENDING until `auto`. */
  manual?: boolean;
  parentId?: string;
  /** Retries after a failed attempt: maxRetries = N allows N + 1 attempts. */
  maxRetries?: number;
  expiresAt?: Date;
  /** Per-attempt execution limit, seconds. */
  timeoutSeconds?: number;
  callback?: string;
  callbackErr?: string;
}

export interface TaskRequest extends SubmitOptions {
  name: string;
  payload?: JsonObject | RawJson;
}

/** A task as the client returns it: payload and result parsed, with their exact text. */
export interface TaskInfo {
  id: string;
  name: string;
  queue: string;
  state: TaskState;
  /** "PENDING", "RUNNING", "COMPLETED", ... */
  stateName: string;
  priority: number;
  /** Parsed with JSON.parse: integers beyond 2^53 come back rounded; see payloadText. */
  payload: JsonObject;
  payloadText: string;
  /** Undefined until COMPLETED. */
  result: JsonObject | undefined;
  resultText: string;
  error: string;
  retries: number;
  maxRetries: number;
  attempts: number;
  workerId: string;
  createdAt: Date | undefined;
  startedAt: Date | undefined;
  completedAt: Date | undefined;
  /** The generated message, for every other field. */
  proto: Task;
}

const TERMINAL = new Set([
  TaskState.COMPLETED,
  TaskState.FAILED,
  TaskState.REVOKED,
  TaskState.KILLED,
]);

export function isTerminal(state: TaskState): boolean {
  return TERMINAL.has(state);
}

export function taskInfo(task: Task): TaskInfo {
  return {
    id: task.id,
    name: task.name,
    queue: task.queue,
    state: task.state,
    stateName: TaskState[task.state] ?? String(task.state),
    priority: task.priority,
    payload: parseJsonObject(task.payload),
    payloadText: task.payload,
    result: task.result === "" ? undefined : parseJsonObject(task.result),
    resultText: task.result,
    error: task.error,
    retries: task.retries,
    maxRetries: task.maxRetries,
    attempts: task.attempts,
    workerId: task.workerId,
    createdAt: task.createdAt && timestampDate(task.createdAt),
    startedAt: task.startedAt && timestampDate(task.startedAt),
    completedAt: task.completedAt && timestampDate(task.completedAt),
    proto: task,
  };
}

export function taskSpec(request: TaskRequest): TaskSpec {
  return create(TaskSpecSchema, {
    id: request.id ?? "",
    name: request.name,
    payload: toJsonText(request.payload),
    queue: request.queue ?? "",
    priority: request.priority ?? 0,
    eta: request.eta && timestampFromDate(request.eta),
    startMode: request.manual ? StartMode.MANUAL : StartMode.AUTO,
    parentId: request.parentId ?? "",
    maxRetries: request.maxRetries ?? 0,
    expiresAt: request.expiresAt && timestampFromDate(request.expiresAt),
    timeout: request.timeoutSeconds === undefined ? undefined : durationOf(request.timeoutSeconds),
    callback: request.callback ?? "",
    callbackErr: request.callbackErr ?? "",
  });
}

export class WaitTimeout extends Error {
  constructor(readonly task: TaskInfo) {
    super(`task ${task.id} is still ${task.stateName}`);
    this.name = "WaitTimeout";
  }
}

export interface WatchOptions {
  /** Replay events after this cursor (0: the retained history). */
  fromCursor?: bigint;
  /** Start at the live tail. */
  liveOnly?: boolean;
  queues?: string[];
  taskIds?: string[];
  states?: TaskState[];
  signal?: AbortSignal;
}

/**
 * A typed Giobba client over gRPC (HTTP/2). Errors are ConnectErrors whose `code` is the
 * gRPC status: InvalidArgument (the message names the field), NotFound, AlreadyExists,
 * FailedPrecondition (an illegal move, e.g. revoking a running task), Unavailable.
 */
export class GiobbaClient {
  readonly tasks: Client<typeof TaskService>;

  constructor(server: string | Transport = defaultServer()) {
    const transport = typeof server === "string" ? grpcTransport(server) : server;
    this.tasks = createClient(TaskService, transport);
  }

  /** Submits one task; returns it as stored (with its id). */
  async submit(name: string, payload?: JsonObject | RawJson, options: SubmitOptions = {}): Promise<TaskInfo> {
    const response = await this.tasks.addTask({ task: taskSpec({ ...options, name, payload }) });
    return taskInfo(response.task!);
  }

  /** Submits a batch atomically (one invalid spec refuses all); answers in request order. */
  async submitMany(requests: TaskRequest[]): Promise<TaskInfo[]> {
    const response = await this.tasks.addTasks({ tasks: requests.map(taskSpec) });
    return response.tasks.map(taskInfo);
  }

  async get(id: string): Promise<TaskInfo> {
    const response = await this.tasks.getTask({ id });
    return taskInfo(response.task!);
  }

  /** Waits until the task is terminal; throws WaitTimeout after `timeoutSeconds`. */
  async wait(id: string, timeoutSeconds = 300): Promise<TaskInfo> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (;;) {
      const left = Math.max(deadline - Date.now(), 0) / 1000;
      const step = Math.min(left, 300);
      const response = await this.tasks.waitTask(
        { id, timeout: durationOf(step) },
        { timeoutMs: (step + 10) * 1000 },
      );
      const task = taskInfo(response.task!);
      if (response.done) return task;
      if (Date.now() >= deadline) throw new WaitTimeout(task);
    }
  }

  /** PENDING -> REVOKED (with pending descendants). */
  async revoke(id: string, reason = ""): Promise<TaskInfo> {
    const response = await this.tasks.revokeTask({ id, reason });
    return taskInfo(response.task!);
  }

  /** RUNNING -> KILLED: the owning worker's handler is cancelled. */
  async kill(id: string, reason = ""): Promise<TaskInfo> {
    const response = await this.tasks.killTask({ id, reason });
    return taskInfo(response.task!);
  }

  /** The activity feed: replay from a cursor, then live, until `signal` aborts. */
  async *watch(options: WatchOptions = {}): AsyncGenerator<Activity> {
    const stream = this.tasks.watchActivities(
      {
        fromCursor: options.fromCursor ?? 0n,
        liveOnly: options.liveOnly ?? false,
        queues: options.queues ?? [],
        taskIds: options.taskIds ?? [],
        states: options.states ?? [],
      },
      { signal: options.signal },
    );
    for await (const item of stream) {
      if (item.activity) yield item.activity;
    }
  }
}
