/**
 * A strict, bounded CBOR (RFC 8949) decoder for untrusted input.
 *
 * Why not cbor-x here: cbor-x is built for speed on trusted data. It keeps the
 * last value of a duplicated map key, accepts trailing bytes when asked to
 * decode one item, and returns encoder-specific types. An attestation verifier
 * must reject all of those, so it uses this small decoder; cbor-x is used
 * where we *encode* (NSM requests, the simulators).
 *
 * Guarantees: every declared length is checked against the bytes that remain
 * before anything is allocated (a 2^64 length costs nothing), nesting depth is
 * capped, map keys must be integers or text and must be unique, text must be
 * valid UTF-8, and decoding one item must consume the whole input.
 */

import { concatBytes } from './bytes.js';

export class CborDecodeError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
    this.name = 'CborDecodeError';
  }
}

export type CborKey = number | bigint | string;

/** A tagged item (major type 6). */
export class CborTag {
  constructor(
    readonly tag: number | bigint,
    readonly value: CborValue,
  ) {}
}

export type CborValue =
  | number
  | bigint
  | string
  | Uint8Array
  | boolean
  | null
  | undefined
  | CborValue[]
  | Map<CborKey, CborValue>
  | CborTag;

export interface CborDecodeOptions {
  /** Maximum nesting of arrays, maps and tags. */
  maxDepth?: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const BREAK = Symbol('break');

class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly maxDepth: number,
  ) {}

  fail(message: string, at = this.pos): never {
    throw new CborDecodeError(message, at);
  }

  byte(): number {
    if (this.pos >= this.buf.length) this.fail('unexpected end of input');
    return this.buf[this.pos++]!;
  }

  /** Reads the argument of a head; returns -1 for "indefinite". */
  argument(info: number, start: number): number | bigint {
    if (info < 24) return info;
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (size === 0) {
      if (info === 31) return -1;
      this.fail(`reserved additional information ${info}`, start);
    }
    if (this.pos + size > this.buf.length) this.fail('unexpected end of input');
    if (size <= 4) {
      // Up to 32 bits fit a double exactly: no BigInt on the common path (every length and PCR index).
      let small = 0;
      for (let i = 0; i < size; i++) small = small * 256 + this.buf[this.pos++]!;
      return small;
    }
    let value = 0n;
    for (let i = 0; i < size; i++) value = (value << 8n) | BigInt(this.buf[this.pos++]!);
    return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  /** A length that must fit in what is left of the input (each unit ≥ `unit` bytes). */
  length(arg: number | bigint, unit: number, start: number): number {
    const remaining = this.buf.length - this.pos;
    if (typeof arg === 'bigint' || arg * unit > remaining) {
      this.fail(`declared length ${arg} exceeds the ${remaining} bytes left`, start);
    }
    return arg;
  }

  bytes(n: number): Uint8Array {
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  item(depth: number): CborValue | typeof BREAK {
    const start = this.pos;
    const head = this.byte();
    const major = head >> 5;
    const info = head & 0x1f;
    if (head === 0xff) return BREAK;
    const arg = this.argument(info, start);
    const indefinite = arg === -1;
    if (indefinite && (major === 0 || major === 1 || major === 6)) {
      this.fail(`indefinite length not allowed for major type ${major}`, start);
    }
    switch (major) {
      case 0:
        return arg;
      case 1:
        return typeof arg === 'bigint' || arg >= Number.MAX_SAFE_INTEGER ? -1n - BigInt(arg) : -1 - arg;
      case 2:
      case 3: {
        let raw: Uint8Array;
        if (indefinite) {
          const chunks: Uint8Array[] = [];
          for (;;) {
            const chunkStart = this.pos;
            const h = this.byte();
            if (h === 0xff) break;
            if (h >> 5 !== major) this.fail('indefinite string chunk of another type', chunkStart);
            const a = this.argument(h & 0x1f, chunkStart);
            if (a === -1) this.fail('nested indefinite string chunk', chunkStart);
            chunks.push(this.bytes(this.length(a, 1, chunkStart)));
          }
          raw = concatBytes(chunks);
        } else {
          raw = this.bytes(this.length(arg, 1, start));
        }
        if (major === 2) return raw;
        // Short ASCII (every map key of an attestation document) is its own UTF-8: read it here,
        // where a TextDecoder call costs more than the string (measured: docs/performance-notes.md).
        if (raw.length <= 32) {
          let ascii = '';
          let i = 0;
          for (; i < raw.length && raw[i]! < 0x80; i++) ascii += String.fromCharCode(raw[i]!);
          if (i === raw.length) return ascii;
        }
        try {
          return utf8.decode(raw);
        } catch {
          return this.fail('invalid UTF-8 in text string', start);
        }
      }
      case 4: {
        if (depth >= this.maxDepth) this.fail('nesting too deep', start);
        const out: CborValue[] = [];
        if (indefinite) {
          for (;;) {
            const v = this.item(depth + 1);
            if (v === BREAK) break;
            out.push(v);
          }
        } else {
          const n = this.length(arg, 1, start);
          for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
        }
        return out;
      }
      case 5: {
        if (depth >= this.maxDepth) this.fail('nesting too deep', start);
        const out = new Map<CborKey, CborValue>();
        const n = indefinite ? Infinity : this.length(arg, 2, start);
        for (let i = 0; i < n; i++) {
          const keyStart = this.pos;
          const key = indefinite ? this.item(depth + 1) : this.value(depth + 1);
          if (key === BREAK) break;
          if (typeof key !== 'number' && typeof key !== 'bigint' && typeof key !== 'string') {
            this.fail('map key must be an integer or a text string', keyStart);
          }
          if (out.has(key)) this.fail(`duplicate map key ${JSON.stringify(String(key))}`, keyStart);
          out.set(key, this.value(depth + 1));
        }
        return out;
      }
      case 6: {
        if (depth >= this.maxDepth) this.fail('nesting too deep', start);
        return new CborTag(arg, this.value(depth + 1));
      }
      default: {
        if (indefinite) this.fail('unexpected break', start);
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        if (info === 23) return undefined;
        return this.fail(`unsupported simple value or float (0x${head.toString(16)})`, start);
      }
    }
  }

  value(depth: number): CborValue {
    const start = this.pos;
    const v = this.item(depth);
    if (v === BREAK) this.fail('unexpected break', start);
    return v;
  }
}

/**
 * Decodes exactly one CBOR data item that must span the whole input.
 * Byte strings are returned as views into `input` (no copy), except
 * indefinite-length ones, which are joined.
 */
export function decodeCbor(input: Uint8Array, options: CborDecodeOptions = {}): CborValue {
  const reader = new Reader(input, options.maxDepth ?? 32);
  const value = reader.value(0);
  if (reader.pos !== input.length) reader.fail(`${input.length - reader.pos} trailing bytes`);
  return value;
}
