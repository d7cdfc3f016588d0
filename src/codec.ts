/**
 * Wire codec (msgpackr, plain maps: no shared record structures between
 * processes) and the check that a result can travel on the wire at all.
 */
import { Packr, addExtension } from 'msgpackr';
import type { BusMessage } from './bus/bus.js';

/**
 * A Map on its way to the wire. msgpackr writes a Map as a msgpack map, which
 * reads back as a plain object (plain objects are msgpack maps too), so user
 * values carry their Maps as this extension instead, read back as Maps.
 */
class WireMap {
  constructor(readonly entries: Array<[unknown, unknown]>) {}
}

/** msgpack extension type of a Map in a user value ('M'; unused by msgpackr itself). */
const MAP_EXTENSION_TYPE = 0x4d;
addExtension({
  Class: WireMap,
  type: MAP_EXTENSION_TYPE,
  write: (map: WireMap) => map.entries,
  // Garbage throws here, and decoding it fails as any other garbage does.
  read: (entries: unknown) => {
    if (!Array.isArray(entries)) throw new TypeError('a Map on the wire must be a list of entries');
    return new Map(entries as Array<[unknown, unknown]>);
  },
});

const packr = new Packr({ useRecords: false, moreTypes: true });

/**
 * Prepares a user value (task arguments, a result, a stored value) for `encode`
 * so that its Maps read back as Maps. Returns the value itself when it holds no
 * Map; otherwise a copy of the containers on the way to each Map.
 */
export function toWireValue<V>(value: V): V {
  return (holdsMap(value, 0) ? withWireMaps(value, 0) : value) as V;
}

/** Deeper than this, values are left as they are (and findUnserializable has already vetted them). */
const MAX_DEPTH = 1_000;

function holdsMap(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return false;
  if (value instanceof Map) return true;
  if (Array.isArray(value)) return value.some((item) => holdsMap(item, depth + 1));
  if (value instanceof Set) return [...value].some((item) => holdsMap(item, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return false;
  for (const key in value) if (holdsMap((value as Record<string, unknown>)[key], depth + 1)) return true;
  return false;
}

function withWireMaps(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  const next = (item: unknown) => withWireMaps(item, depth + 1);
  if (value instanceof Map) return new WireMap(Array.from(value, ([key, item]) => [next(key), next(item)]));
  if (Array.isArray(value)) return value.map(next);
  if (value instanceof Set) return new Set([...value].map(next));
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = next((value as Record<string, unknown>)[key]);
  return copy;
}

/** Encodes any plain value (a store entry's envelope); user values in it go through `toWireValue` first. */
export function encodeValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes bytes made by `encodeValue`; throws on bytes that are not msgpack. */
export function decodeValue(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

export function encode(message: BusMessage): Uint8Array {
  return packr.pack(message);
}

/** Decodes a wire message; `null` when the bytes are not a msgpack map with a numeric `v` and a string `type`. */
export function parseMessage(bytes: Uint8Array): BusMessage | null {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const { v, type } = value as Record<string, unknown>;
  return typeof v === 'number' && typeof type === 'string' ? (value as BusMessage) : null;
}

/**
 * Where a value cannot be serialised: a path such as `result.items[2].fn (a function)`,
 * or `null` when the whole value can. Plain data only: primitives, bigint,
 * Date, Uint8Array, arrays, Maps, Sets and plain objects, without cycles.
 */
export function findUnserializable(value: unknown, path = 'result'): string | null {
  // Nearly every value is plain data: checked first without building the paths only a failure needs.
  if (typeof value !== 'object' || value === null ? isPlainValue(value) : isPlainObject(value, new Set())) return null;
  return walk(value, path, new Set());
}

/** `walk(...) === null` for a primitive or a function. */
function isPlainValue(value: unknown): boolean {
  return typeof value !== 'function' && typeof value !== 'symbol';
}

/** `walk(...) === null`, without the paths: the same rules, in the same order. */
function isPlainObject(object: object, seen: Set<object>): boolean {
  if (object instanceof Date || object instanceof Uint8Array) return true;
  if (seen.has(object)) return false;
  seen.add(object);
  try {
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) if (!isPlain(object[i], seen)) return false;
      return true;
    }
    if (object instanceof Map) {
      for (const [key, entry] of object) if (!isPlain(key, seen) || !isPlain(entry, seen)) return false;
      return true;
    }
    if (object instanceof Set) {
      for (const entry of object) if (!isPlain(entry, seen)) return false;
      return true;
    }
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) return false;
    for (const key of Object.keys(object)) if (!isPlain((object as Record<string, unknown>)[key], seen)) return false;
    return true;
  } finally {
    seen.delete(object);
  }
}

function isPlain(value: unknown, seen: Set<object>): boolean {
  return typeof value !== 'object' || value === null ? isPlainValue(value) : isPlainObject(value, seen);
}

function walk(value: unknown, path: string, seen: Set<object>): string | null {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return null;
    case 'function':
      return `${path} (a function)`;
    case 'symbol':
      return `${path} (a symbol)`;
  }
  if (value === null || value instanceof Date || value instanceof Uint8Array) return null;
  const object = value as object;
  if (seen.has(object)) return `${path} (a circular reference)`;
  seen.add(object);
  try {
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) {
        const found = walk(object[i], `${path}[${i}]`, seen);
        if (found) return found;
      }
      return null;
    }
    if (object instanceof Map) {
      for (const [key, entry] of object) {
        const found = walk(key, `${path}<key>`, seen) ?? walk(entry, `${path}.get(${describeKey(key)})`, seen);
        if (found) return found;
      }
      return null;
    }
    if (object instanceof Set) {
      for (const entry of object) {
        const found = walk(entry, `${path}<entry>`, seen);
        if (found) return found;
      }
      return null;
    }
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      return `${path} (an instance of ${proto?.constructor?.name ?? 'a class'})`;
    }
    for (const key of Object.keys(object)) {
      const found = walk((object as Record<string, unknown>)[key], `${path}.${key}`, seen);
      if (found) return found;
    }
    return null;
  } finally {
    seen.delete(object);
  }
}

/** A Map key for a path; `String()` throws for some (a null-prototype object, for one). */
function describeKey(key: unknown): string {
  try {
    return String(key);
  } catch {
    return typeof key;
  }
}
