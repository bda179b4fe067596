/**
 * A small deterministic CBOR encoder for the shapes this library writes
 * (attestation payloads in the simulator, COSE structures). Map entries are
 * written in insertion order, so callers control the key order exactly, and
 * a map can be written with indefinite length as newer NSM versions do.
 */

export type EncodableValue =
  | number
  | bigint
  | string
  | Uint8Array
  | boolean
  | null
  | undefined
  | EncodableValue[]
  | Map<number | string, EncodableValue>
  | IndefiniteMap;

/** Wraps a map to be encoded with indefinite length (`0xbf … 0xff`). */
export class IndefiniteMap {
  constructor(readonly map: Map<number | string, EncodableValue>) {}
}

function head(out: number[], major: number, value: number | bigint): void {
  const m = major << 5;
  const v = BigInt(value);
  if (v < 24n) out.push(m | Number(v));
  else if (v < 0x100n) out.push(m | 24, Number(v));
  else if (v < 0x10000n) out.push(m | 25, Number(v >> 8n), Number(v & 0xffn));
  else if (v < 0x100000000n) out.push(m | 26, ...[24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn)));
  else out.push(m | 27, ...[56n, 48n, 40n, 32n, 24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn)));
}

function write(out: number[], value: EncodableValue): void {
  if (value === null) out.push(0xf6);
  else if (value === undefined) out.push(0xf7);
  else if (value === false) out.push(0xf4);
  else if (value === true) out.push(0xf5);
  else if (typeof value === 'number' || typeof value === 'bigint') {
    if (typeof value === 'number' && !Number.isInteger(value)) throw new TypeError('only integers can be encoded');
    if (value >= 0) head(out, 0, value);
    else head(out, 1, -1n - BigInt(value));
  } else if (typeof value === 'string') {
    const bytes = new TextEncoder().encode(value);
    head(out, 3, bytes.length);
    for (const b of bytes) out.push(b);
  } else if (value instanceof Uint8Array) {
    head(out, 2, value.length);
    for (const b of value) out.push(b);
  } else if (Array.isArray(value)) {
    head(out, 4, value.length);
    for (const item of value) write(out, item);
  } else if (value instanceof IndefiniteMap) {
    out.push(0xbf);
    for (const [k, v] of value.map) {
      write(out, k);
      write(out, v);
    }
    out.push(0xff);
  } else {
    head(out, 5, value.size);
    for (const [k, v] of value) {
      write(out, k);
      write(out, v);
    }
  }
}

export function encodeCbor(value: EncodableValue): Uint8Array {
  const out: number[] = [];
  write(out, value);
  return Uint8Array.from(out);
}
