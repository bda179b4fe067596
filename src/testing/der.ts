/** A DER writer for the certificates of the simulated PKI. */

function length(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts);
  return Buffer.concat([Uint8Array.of(tag, ...length(body.length)), body]);
}

export const sequence = (...parts: Uint8Array[]): Uint8Array => tlv(0x30, ...parts);
export const set = (...parts: Uint8Array[]): Uint8Array => tlv(0x31, ...parts);
export const explicit = (n: number, inner: Uint8Array): Uint8Array => tlv(0xa0 | n, inner);
export const octetString = (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes);
export const nullValue = (): Uint8Array => Uint8Array.of(0x05, 0x00);
export const boolean = (v: boolean): Uint8Array => Uint8Array.of(0x01, 0x01, v ? 0xff : 0x00);
export const utf8String = (s: string): Uint8Array => tlv(0x0c, new TextEncoder().encode(s));
export const printableString = (s: string): Uint8Array => tlv(0x13, new TextEncoder().encode(s));

/** A non-negative INTEGER from big-endian magnitude bytes or a small number. */
export function integer(value: number | Uint8Array): Uint8Array {
  let bytes = typeof value === 'number' ? bigEndian(value) : Uint8Array.from(value);
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && (bytes[start + 1]! & 0x80) === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Uint8Array.of(0), bytes]);
  return tlv(0x02, bytes);
}

function bigEndian(n: number): Uint8Array {
  const out: number[] = [];
  do {
    out.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  return Uint8Array.from(out);
}

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [arcs[0]! * 40 + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80;
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** BIT STRING of whole bytes (no unused bits). */
export const bitString = (bytes: Uint8Array): Uint8Array => tlv(0x03, Uint8Array.of(0), bytes);

/** BIT STRING of flag bits, DER-trimmed (e.g. KeyUsage). */
export function flagBits(byte: number): Uint8Array {
  if (byte === 0) return tlv(0x03, Uint8Array.of(0));
  let unused = 0;
  while (((byte >> unused) & 1) === 0) unused++;
  return tlv(0x03, Uint8Array.of(unused, byte));
}

export function time(date: Date): Uint8Array {
  const iso = date.toISOString();
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, new TextEncoder().encode(`${digits.slice(2)}Z`));
  return tlv(0x18, new TextEncoder().encode(`${digits}Z`));
}
