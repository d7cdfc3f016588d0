/**
 * JSON for what the commands print on stdout. A result is plain data as the codec carries
 * it, which JSON only partly covers: every such value still comes out as one JSON document,
 * so that `tenaz run flow.ts | jq` always has one to read.
 */
import { randomUUID } from 'node:crypto';

/**
 * `value` as JSON, indented by `indent` spaces (0: one line). What JSON has no form for is
 * mapped onto it: a bigint is a number with its exact digits, a Map an object when its keys
 * are strings or numbers (else a list of `[key, value]` pairs), a Set a list, bytes a list of
 * numbers, a Date its ISO string; `undefined` as the whole value is `null`.
 * @example toJson({ n: 12345678901234567890n, m: new Map([['a', 1]]) }) // '{"n":12345678901234567890,"m":{"a":1}}'
 */
export function toJson(value: unknown, indent = 0): string {
  // JSON.stringify writes no bigint: each goes through as a string tagged with a token no
  // value holds, whose quotes and tag come off afterwards.
  let tag: string | undefined;
  const text = JSON.stringify(
    value,
    (_key, item: unknown) => {
      if (typeof item === 'bigint') return `${(tag ??= randomUUID())}${item}`;
      if (item instanceof Map) return fromMap(item);
      if (item instanceof Set) return [...item];
      if (item instanceof Uint8Array) return Array.from(item);
      return item;
    },
    indent,
  );
  if (text === undefined) return 'null';
  return tag === undefined ? text : text.replaceAll(new RegExp(`"${tag}(-?\\d+)"`, 'g'), '$1');
}

function fromMap(map: Map<unknown, unknown>): unknown {
  const keys = [...map.keys()];
  const named = keys.every((key) => typeof key === 'string' || typeof key === 'number');
  // 1 and '1' would be one key of an object: pairs keep them both.
  return named && new Set(keys.map(String)).size === keys.length ? Object.fromEntries(map) : [...map];
}
