/**
 * Payloads and results travel as JSON object text (see task.proto). JavaScript numbers are
 * IEEE doubles: integers are exact only up to 2^53 (9007199254740992). So:
 *
 * - `toJsonText` writes numbers as JSON does, `bigint` values as exact integer literals,
 *   and refuses what would be silently wrong: NaN, ±Infinity (JSON has no such values) and
 *   integer-valued numbers beyond ±2^53 written without an exponent (they were probably
 *   meant as exact integers and already lost precision; pass a bigint instead).
 * - `JSON.parse` (used for `Task.payload` and `TaskInfo.result`) reads integers beyond
 *   2^53 rounded. The original text is always available (`payloadText`, `resultText`).
 */

export type JsonValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | JsonValue[]
  | { [key: string]: JsonValue | undefined };

export type JsonObject = { [key: string]: JsonValue | undefined };

/** JSON text passed through untouched (e.g. an echo handler returning its payload). */
export class RawJson {
  constructor(readonly text: string) {}
}

const LIMIT = 2 ** 53;

function encode(value: unknown, path: string): string | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "bigint":
      return value.toString();
    case "number": {
      if (!Number.isFinite(value)) {
        throw new RangeError(`${path}: ${value} is not representable in JSON`);
      }
      const text = JSON.stringify(value);
      if (Number.isInteger(value) && Math.abs(value) > LIMIT && !/e/i.test(text)) {
        throw new RangeError(
          `${path}: ${text} is beyond 2^53 and not exact as a JavaScript number; pass a bigint`,
        );
      }
      return text;
    }
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    default:
  }
  if (value === null) return "null";
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) {
    return `[${value.map((item, i) => encode(item, `${path}[${i}]`) ?? "null").join(",")}]`;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const json = (value as { toJSON?: () => unknown }).toJSON;
    if (typeof json === "function") return encode(json.call(value), path);
    throw new TypeError(`${path}: ${proto?.constructor?.name ?? "object"} is not JSON`);
  }
  const parts: string[] = [];
  for (const [key, item] of Object.entries(value as object)) {
    const text = encode(item, `${path}.${key}`);
    if (text !== undefined) parts.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${parts.join(",")}}`;
}

/** JSON object text for a payload or result; see the module comment for numbers. */
export function toJsonText(value: JsonObject | RawJson | undefined | null, what = "payload"): string {
  if (value === undefined || value === null) return "{}";
  if (value instanceof RawJson) return value.text;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${what} must be a JSON object`);
  }
  return encode(value, what) ?? "{}";
}

/** Parses JSON object text ("" means {}). Integers beyond 2^53 come back rounded. */
export function parseJsonObject(text: string): JsonObject {
  if (text.trim() === "") return {};
  return JSON.parse(text) as JsonObject;
}
