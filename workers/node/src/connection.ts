import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

/** Default server: $GIOBBA_SERVER or 127.0.0.1:50051 (host:port, plaintext HTTP/2). */
export function defaultServer(): string {
  return process.env.GIOBBA_SERVER || "127.0.0.1:50051";
}

/**
 * A gRPC (HTTP/2) transport to a Giobba server given as host:port or a URL. HTTP/2 pings
 * every 10 s (idle or not; the server permits it) notice a dead or unreachable server within
 * about 20 s, as the Python and Go workers do.
 */
export function grpcTransport(server: string = defaultServer()): Transport {
  const baseUrl = /^https?:\/\//.test(server) ? server : `http://${server}`;
  return createGrpcTransport({
    baseUrl,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 10_000,
    pingIdleConnection: true,
  });
}

export function durationOf(seconds: number): { seconds: bigint; nanos: number } {
  const whole = Math.floor(seconds);
  return { seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) };
}

export function secondsOf(d: { seconds: bigint; nanos: number } | undefined): number {
  return d === undefined ? 0 : Number(d.seconds) + d.nanos / 1e9;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
