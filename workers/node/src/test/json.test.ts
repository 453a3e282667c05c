import assert from "node:assert/strict";
import { test } from "node:test";

import { parseJsonObject, RawJson, toJsonText } from "../json.js";

test("integers up to 2^53 round-trip exactly", () => {
  const value = { max: 2 ** 53, min: -(2 ** 53), safe: Number.MAX_SAFE_INTEGER };
  const text = toJsonText(value);
  assert.equal(text, '{"max":9007199254740992,"min":-9007199254740992,"safe":9007199254740991}');
  assert.deepEqual(parseJsonObject(text), value);
});

test("integers beyond 2^53 are refused unless given as bigint", () => {
  assert.throws(() => toJsonText({ n: 2 ** 53 + 2 }), /beyond 2\^53/);
  assert.equal(toJsonText({ n: 2n ** 64n }), '{"n":18446744073709551616}');
  assert.equal(toJsonText({ f: 1e300 }), '{"f":1e+300}');
});

test("NaN and Infinity are refused", () => {
  assert.throws(() => toJsonText({ x: NaN }), /not representable/);
  assert.throws(() => toJsonText({ nested: [Infinity] }), /nested\[0\]/);
});

test("unicode, nesting, nulls and raw text", () => {
  const value = { s: "héllo 🌍 \u0000 \"q\"", n: null, a: [1, { b: [true, false] }], u: undefined };
  const text = toJsonText(value);
  assert.deepEqual(JSON.parse(text), { s: value.s, n: null, a: value.a });
  assert.equal(toJsonText(new RawJson('{"x":12345678901234567890}')), '{"x":12345678901234567890}');
  assert.throws(() => toJsonText([] as never), /JSON object/);
});
