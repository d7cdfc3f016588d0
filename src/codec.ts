/**
 * Wire codec (msgpackr, plain maps: no shared record structures between
 * processes) and the check that a result can travel on the wire at all.
 */
import { Packr } from 'msgpackr';
import type { BusMessage } from './bus/bus.js';

const packr = new Packr({ useRecords: false, moreTypes: true });

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
  return walk(value, path, new Set());
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
        const found = walk(key, `${path}<key>`, seen) ?? walk(entry, `${path}.get(${String(key)})`, seen);
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
