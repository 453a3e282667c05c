export * from "./client.js";
export * from "./json.js";
export { defaultServer, grpcTransport } from "./connection.js";
export { Cancelled, NoRetry, Worker } from "./worker-runtime.js";
export type { Handler, HandlerResult, Task, TaskContext, WorkerOptions } from "./worker-runtime.js";
export * as handlers from "./handlers.js";
