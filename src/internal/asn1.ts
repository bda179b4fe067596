/**
 * A minimal ASN.1 BER/DER reader: enough for X.509 certificates (strict DER,
 * definite lengths only) and CMS EnvelopedData as KMS sends it (BER with
 * indefinite lengths and end-of-contents octets). It never allocates for
 * content: nodes are offsets into the input, checked against their parent.
 */

export class Asn1Error extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
    this.name = 'Asn1Error';
  }
}

export interface Asn1Node {
  /** The identifier octet (class, constructed bit, tag number < 31). */
  readonly tag: number;
  readonly constructed: boolean;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly contentStart: number;
  /** Offset one past the last content octet (before any end-of-contents). */
  readonly contentEnd: number;
  /** Offset one past the whole element (after any end-of-contents). */
  readonly end: number;
  readonly indefinite: boolean;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
} as const;

export interface Asn1ReadOptions {
  /** Accept BER indefinite lengths (CMS). Certificates must be DER. */
  ber?: boolean;
  maxDepth?: number;
}

/** Reads the element that starts at `pos` and must end by `limit`. */
export function readNode(buf: Uint8Array, pos: number, limit: number, opts: Asn1ReadOptions = {}, depth = 0): Asn1Node {
  const start = pos;
  if (depth > (opts.maxDepth ?? 32)) throw new Asn1Error('nesting too deep', start);
  if (pos + 2 > limit) throw new Asn1Error('truncated element', start);
  const tag = buf[pos++]!;
  if ((tag & 0x1f) === 0x1f) throw new Asn1Error('high tag numbers are not supported', start);
  const constructed = (tag & 0x20) !== 0;
  const first = buf[pos++]!;
  if (first === 0x80) {
    if (!opts.ber) throw new Asn1Error('indefinite length in DER', start);
    if (!constructed) throw new Asn1Error('indefinite length on a primitive element', start);
    // Walk the children to find the end-of-contents octets.
    let at = pos;
    for (;;) {
      if (at + 2 <= limit && buf[at] === 0 && buf[at + 1] === 0) {
        return { tag, constructed, start, contentStart: pos, contentEnd: at, end: at + 2, indefinite: true };
      }
      at = readNode(buf, at, limit, opts, depth + 1).end;
    }
  }
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    if (count > 4) throw new Asn1Error('length too large', start);
    if (pos + count > limit) throw new Asn1Error('truncated length', start);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[pos++]!;
    if (!opts.ber && (length < 0x80 || buf[start + 2] === 0)) throw new Asn1Error('non-minimal length in DER', start);
  }
  if (pos + length > limit) throw new Asn1Error('element runs past its parent', start);
  return { tag, constructed, start, contentStart: pos, contentEnd: pos + length, end: pos + length, indefinite: false };
}

/** The children of a constructed element. */
export function children(buf: Uint8Array, node: Asn1Node, opts: Asn1ReadOptions = {}): Asn1Node[] {
  if (!node.constructed) throw new Asn1Error('expected a constructed element', node.start);
  const out: Asn1Node[] = [];
  let at = node.contentStart;
  while (at < node.contentEnd) {
    const child = readNode(buf, at, node.contentEnd, opts);
    out.push(child);
    at = child.end;
  }
  return out;
}

export function content(buf: Uint8Array, node: Asn1Node): Uint8Array {
  return buf.subarray(node.contentStart, node.contentEnd);
}

export function whole(buf: Uint8Array, node: Asn1Node): Uint8Array {
  return buf.subarray(node.start, node.end);
}

export function expectTag(node: Asn1Node | undefined, tag: number, what: string): Asn1Node {
  if (!node) throw new Asn1Error(`missing ${what}`, -1);
  if (node.tag !== tag) {
    throw new Asn1Error(`${what}: expected tag 0x${tag.toString(16)}, found 0x${node.tag.toString(16)}`, node.start);
  }
  return node;
}

/** Dotted-decimal form of an OBJECT IDENTIFIER's content. */
export function decodeOid(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new Asn1Error('empty OID', -1);
  const parts: number[] = [];
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (value === 0 && b === 0x80) throw new Asn1Error('non-minimal OID arc', i);
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw new Asn1Error('OID arc too large', i);
    if ((b & 0x80) === 0) {
      if (parts.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        parts.push(first, value - first * 40);
      } else {
        parts.push(value);
      }
      value = 0;
    } else if (i === bytes.length - 1) {
      throw new Asn1Error('truncated OID', i);
    }
  }
  return parts.join('.');
}

/** A DER BOOLEAN: exactly one octet, 00 (false) or FF (true); anything else is an error (X.690 §11.1). */
export function decodeBoolean(buf: Uint8Array, node: Asn1Node): boolean {
  if (node.tag !== TAG.BOOLEAN) throw new Asn1Error('expected a BOOLEAN', node.start);
  const bytes = content(buf, node);
  if (bytes.length !== 1 || (bytes[0] !== 0x00 && bytes[0] !== 0xff)) throw new Asn1Error('DER BOOLEAN must be the single octet 00 or FF', node.start);
  return bytes[0] === 0xff;
}

/** Parses UTCTime / GeneralizedTime in the forms RFC 5280 allows (UTC, seconds, "Z"). */
export function decodeTime(buf: Uint8Array, node: Asn1Node): Date {
  // Digits read in place: no string, regular expression or arrays (this ran 8 times per cold
  // attestation verification and was 9 % of its own JavaScript in a --cpu-prof). Not
  // TextDecoder('latin1'): workerd's TextDecoder knows UTF-8 only, and times are ASCII digits.
  const utc = node.tag === TAG.UTC_TIME;
  const yearDigits = utc ? 2 : 4;
  const at = node.contentStart;
  if ((!utc && node.tag !== TAG.GENERALIZED_TIME) || node.contentEnd - at !== yearDigits + 11 || buf[node.contentEnd - 1] !== 0x5a) {
    throw new Asn1Error('invalid time', node.start);
  }
  const digits = (from: number, count: number): number => {
    let v = 0;
    for (let i = from; i < from + count; i++) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) throw new Asn1Error('invalid time', node.start);
      v = v * 10 + d;
    }
    return v;
  };
  let year = digits(at, yearDigits);
  if (utc) year += year >= 50 ? 1900 : 2000;
  const p = at + yearDigits;
  const month = digits(p, 2) - 1;
  const day = digits(p + 2, 2);
  const hours = digits(p + 4, 2);
  const minutes = digits(p + 6, 2);
  const seconds = digits(p + 8, 2);
  const date = new Date(Date.UTC(year, month, day, hours, minutes, seconds));
  // Date.UTC rolls over (month 13, 30 February, 24:00, second 60): a field that moved is invalid.
  // (Date.UTC maps years 0..99 to 1900..1999, which the check below also refuses.)
  if (
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== month ||
    date.getUTCDate() !== day ||
    date.getUTCHours() !== hours ||
    date.getUTCMinutes() !== minutes ||
    date.getUTCSeconds() !== seconds
  ) {
    throw new Asn1Error('invalid time', node.start);
  }
  return date;
}
