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

/**
 * How deeply containers (arrays, plain objects, Maps, Sets) may nest in a value that
 * travels on the wire or into the store: a linked list of 256 nodes passes, one of 257 is
 * refused. msgpackr encodes and decodes by recursion, and on Node's default stack overflows
 * at about 525 nested Maps (each travels as an extension holding arrays), 700 Sets, 1,400
 * arrays or 3,900 objects; half the shallowest of these leaves room for the stack its caller
 * already uses. `findUnserializable` refuses deeper values, so nothing ever encodes one.
 * Dates and byte arrays are leaves: they add no level.
 */
export const MAX_NESTING_DEPTH = 256;

// Only values findUnserializable has vetted come here; the depth bound is a guard, never reached.
function holdsMap(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object' || depth > MAX_NESTING_DEPTH) return false;
  if (value instanceof Map) return true;
  if (Array.isArray(value)) return value.some((item) => holdsMap(item, depth + 1));
  if (value instanceof Set) return [...value].some((item) => holdsMap(item, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return false;
  for (const key in value) if (holdsMap((value as Record<string, unknown>)[key], depth + 1)) return true;
  return false;
}

function withWireMaps(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_NESTING_DEPTH) return value;
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
 * Date, Uint8Array, arrays, Maps, Sets and plain objects, without cycles, nested at most
 * `MAX_NESTING_DEPTH` levels deep. Never overflows the stack, however deep the value.
 */
export function findUnserializable(value: unknown, path = 'result'): string | null {
  // Nearly every value is plain data: checked first without building the paths only a failure needs.
  const containers = new Containers();
  if (isPlain(value, containers)) return null;
  // Past the visit budget, the value is told at its root: a walk through it would take as long again.
  return walk(value, { root: path, segments: [] }, containers.visits > MAX_CONTAINER_VISITS ? containers : new Containers());
}

/**
 * How many containers a check may enter, a shared one each time it appears: a value that
 * shares sub-objects level after level (`{ l: x, r: x }`, nested) holds exponentially many,
 * which neither the check nor the encoding would ever get through.
 */
export const MAX_CONTAINER_VISITS = 10_000_000;

/** The containers around the one being checked (their number is the depth), and how many were entered in all. */
class Containers extends Set<object> {
  visits = 0;
}

/** `walk(...) === null` for a primitive or a function. */
function isPlainValue(value: unknown): boolean {
  return typeof value !== 'function' && typeof value !== 'symbol';
}

/**
 * `walk(...) === null`, without the paths: the same rules, in the same order. `seen` holds the
 * containers around `object`, so its size is the depth, and recursion stops at `MAX_NESTING_DEPTH`.
 */
function isPlainObject(object: object, seen: Containers): boolean {
  if (object instanceof Date || object instanceof Uint8Array) return true;
  if (seen.has(object) || seen.size >= MAX_NESTING_DEPTH || ++seen.visits > MAX_CONTAINER_VISITS) return false;
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

function isPlain(value: unknown, seen: Containers): boolean {
  return typeof value !== 'object' || value === null ? isPlainValue(value) : isPlainObject(value, seen);
}

/**
 * Where `walk` is: the root's name and the steps from it (`.key`, `[2]`, `<entry>`), kept
 * apart so that only a failure joins them, and a deep one is shortened.
 */
interface WalkPath {
  readonly root: string;
  readonly segments: string[];
}

/** Past this many steps, a path shows its first and last few: the middle of a deep path says nothing. */
const MAX_PATH_SEGMENTS = 12;
const PATH_HEAD_SEGMENTS = 8;
const PATH_TAIL_SEGMENTS = 3;

function formatPath({ root, segments }: WalkPath): string {
  if (segments.length <= MAX_PATH_SEGMENTS) return root + segments.join('');
  return `${root}${segments.slice(0, PATH_HEAD_SEGMENTS).join('')}…${segments.slice(-PATH_TAIL_SEGMENTS).join('')}`;
}

/** `walk` one step down: into `value` at `segment`. */
function walkInto(value: unknown, segment: string, path: WalkPath, seen: Containers): string | null {
  path.segments.push(segment);
  try {
    return walk(value, path, seen);
  } finally {
    path.segments.pop();
  }
}

function walk(value: unknown, path: WalkPath, seen: Containers): string | null {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return null;
    case 'function':
      return `${formatPath(path)} (a function)`;
    case 'symbol':
      return `${formatPath(path)} (a symbol)`;
  }
  if (value === null || value instanceof Date || value instanceof Uint8Array) return null;
  const object = value as object;
  if (seen.has(object)) return `${formatPath(path)} (a circular reference)`;
  // `seen` holds the containers around this one: its size is the depth.
  if (seen.size >= MAX_NESTING_DEPTH) return `${formatPath(path)} (nested more than ${MAX_NESTING_DEPTH} levels deep)`;
  if (++seen.visits > MAX_CONTAINER_VISITS) {
    return `${formatPath(path)} (the value holds more than ${MAX_CONTAINER_VISITS} arrays, objects, Maps and Sets, counting a shared one each time it appears)`;
  }
  seen.add(object);
  try {
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) {
        const found = walkInto(object[i], `[${i}]`, path, seen);
        if (found) return found;
      }
      return null;
    }
    if (object instanceof Map) {
      for (const [key, entry] of object) {
        const found = walkInto(key, '<key>', path, seen) ?? walkInto(entry, `.get(${describeKey(key)})`, path, seen);
        if (found) return found;
      }
      return null;
    }
    if (object instanceof Set) {
      for (const entry of object) {
        const found = walkInto(entry, '<entry>', path, seen);
        if (found) return found;
      }
      return null;
    }
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      return `${formatPath(path)} (an instance of ${proto?.constructor?.name ?? 'a class'})`;
    }
    for (const key of Object.keys(object)) {
      const found = walkInto((object as Record<string, unknown>)[key], `.${key}`, path, seen);
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
