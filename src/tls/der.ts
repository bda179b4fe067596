/**
 * A minimal DER writer for the one certificate shape src/tls issues. Why not a library: the
 * runtime must not depend on devDependencies (@peculiar/x509, pkijs), src/testing/der.ts is the
 * test kit (a higher layer), and a certificate is a handful of TLVs whose every byte the wire
 * format spec (docs/tls.md) names. Lengths are definite and minimal, INTEGERs minimal, so the
 * output is DER and `openssl asn1parse` reads it back (test/tls/certificate.test.ts).
 */

function lengthOctets(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const head = [tag, ...lengthOctets(size)];
  const out = new Uint8Array(head.length + size);
  out.set(head, 0);
  let at = head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const sequence = (...parts: Uint8Array[]): Uint8Array => tlv(0x30, ...parts);
export const set = (...parts: Uint8Array[]): Uint8Array => tlv(0x31, ...parts);
export const explicit = (n: number, inner: Uint8Array): Uint8Array => tlv(0xa0 | n, inner);
export const octetString = (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes);
export const booleanTrue = (): Uint8Array => Uint8Array.of(0x01, 0x01, 0xff);
export const utf8String = (s: string): Uint8Array => tlv(0x0c, new TextEncoder().encode(s));
/** BIT STRING of whole bytes (no unused bits): signatures. */
export const bitString = (bytes: Uint8Array): Uint8Array => tlv(0x03, Uint8Array.of(0), bytes);

/** A non-negative INTEGER from big-endian magnitude bytes or a small number, minimal. */
export function integer(value: number | Uint8Array): Uint8Array {
  let bytes = typeof value === 'number' ? Uint8Array.of(value & 0xff) : value;
  if (typeof value === 'number' && (value < 0 || value > 0x7f)) throw new RangeError('small integers only');
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && (bytes[start + 1]! & 0x80) === 0) start++;
  bytes = bytes.subarray(start);
  return bytes[0]! & 0x80 ? tlv(0x02, Uint8Array.of(0), bytes) : tlv(0x02, bytes);
}

/** OBJECT IDENTIFIER from dotted decimal; arcs are BigInt so a 2.25 (UUID) arc of 128 bits encodes. */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const out: number[] = [];
  const push = (arc: bigint) => {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80;
    out.push(...chunk);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const arc of arcs.slice(2)) push(arc);
  return tlv(0x06, Uint8Array.from(out));
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
export function time(date: Date): Uint8Array {
  const digits = date.toISOString().slice(0, 19).replace(/[-T:]/g, '');
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, new TextEncoder().encode(`${digits.slice(2)}Z`));
  return tlv(0x18, new TextEncoder().encode(`${digits}Z`));
}
