import { Encoder, type Options } from 'cbor-x';
import { concatBytes } from '../internal/bytes.js';

/**
 * cbor-x set up to write what the strict decoder (`src/internal/cbor.ts`) and the NSM use:
 * byte strings as major type 2 (no typed-array tags), `Map`s as plain definite-length maps
 * (no tag 259), no record extension. cbor-x already writes definite lengths and the shortest
 * integer heads. (`useTag259ForMaps` is read by cbor-x 1.6 but missing from its types.)
 */
const encoder = new Encoder({ tagUint8Array: false, useRecords: false, mapsAsObjects: true, useTag259ForMaps: false } as Options);

const INT32_LIMIT = 2 ** 32;

/**
 * cbor-x writes a JS number beyond 32 bits as a float64 even when it is an integer, where the
 * NSM writes a 64-bit integer (e.g. the `timestamp`). Those become bigints, which cbor-x writes
 * as 64-bit integers (the shortest form for that range); smaller bigints become numbers so that
 * they get the short heads too. Fractions are refused: nothing this
 * kit encodes is a float.
 */
function integersAsCbor(value: unknown): unknown {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new TypeError(`only integers can be encoded, got ${value}`);
      return value >= INT32_LIMIT || value < -INT32_LIMIT ? BigInt(value) : value;
  }
  if (typeof value === 'bigint') return value < INT32_LIMIT && value >= -INT32_LIMIT ? Number(value) : value;
  if (Array.isArray(value)) return value.map(integersAsCbor);
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [integersAsCbor(k), integersAsCbor(v)]));
  return value;
}

/**
 * Encodes `value` (integers, bigints, strings, `Uint8Array`s, booleans, null, undefined, arrays,
 * `Map`s with text or integer keys, in insertion order) with cbor-x as canonical definite-length CBOR.
 *
 * @example
 * ```ts
 * const protectedHeader = encodeCbor(new Map([[1, -35]])); // a1 01 38 22
 * ```
 */
export function encodeCbor(value: unknown): Uint8Array {
  return new Uint8Array(encoder.encode(integersAsCbor(value)));
}

/**
 * Encodes a map with indefinite length (`bf … ff`), as newer NSM versions write the payload.
 * cbor-x only writes definite-length maps (its streaming mode writes indefinite *arrays*), so
 * this adds the two framing bytes around entries that cbor-x encodes.
 *
 * @example
 * ```ts
 * encodeIndefiniteMap(new Map([['k', 1]])); // bf 61 6b 01 ff
 * ```
 */
export function encodeIndefiniteMap(entries: ReadonlyMap<string | number, unknown>): Uint8Array {
  const items = [...entries].flatMap(([k, v]) => [encodeCbor(k), encodeCbor(v)]);
  return concatBytes([Uint8Array.of(0xbf), ...items, Uint8Array.of(0xff)]);
}
