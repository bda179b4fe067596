import { describe, expect, it } from 'vitest';
import { Asn1Error, TAG, children, content, decodeOid, decodeTime, expectTag, readNode } from '../../src/internal/asn1.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const read = (s: string, ber = false) => {
  const b = hex(s);
  return { b, node: readNode(b, 0, b.length, { ber }) };
};
const failure = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(Asn1Error);
    return (err as Error).message;
  }
  throw new Error('expected an Asn1Error');
};
const time = (tag: number, text: string) => {
  const body = new TextEncoder().encode(text);
  const b = Uint8Array.from([tag, body.length, ...body]);
  return decodeTime(b, readNode(b, 0, b.length));
};

describe('readNode (DER)', () => {
  it('reads short and long definite lengths as offsets into the input', () => {
    const { b, node } = read('30 03 02 01 05');
    expect(node).toEqual({ tag: 0x30, constructed: true, start: 0, contentStart: 2, contentEnd: 5, end: 5, indefinite: false });
    const [int] = children(b, node);
    expect(int!.tag).toBe(TAG.INTEGER);
    expect([...content(b, int!)]).toEqual([5]);

    const long = hex(`04 81 80 ${'00'.repeat(128)}`);
    expect(readNode(long, 0, long.length).contentEnd).toBe(131);
  });

  it('refuses non-minimal lengths, indefinite lengths and high tag numbers in DER', () => {
    expect(failure(() => read('04 81 05 0102030405'))).toBe('non-minimal length in DER at offset 0');
    expect(failure(() => read(`04 82 00 80 ${'00'.repeat(128)}`))).toBe('non-minimal length in DER at offset 0');
    expect(failure(() => read('30 80 02 01 05 00 00'))).toBe('indefinite length in DER at offset 0');
    expect(failure(() => read('1f 81 01 00'))).toBe('high tag numbers are not supported at offset 0');
    expect(failure(() => read('04 85 01 02 03 04 05 06'))).toBe('length too large at offset 0');
  });

  it('an element never runs past its parent, and truncation is reported where it starts', () => {
    expect(failure(() => read('04 05 01 02'))).toBe('element runs past its parent at offset 0');
    // The child claims 5 bytes inside a parent of 4.
    const b = hex('30 04 04 05 01 02');
    expect(failure(() => children(b, readNode(b, 0, b.length)))).toBe('element runs past its parent at offset 2');
    expect(failure(() => read('04'))).toBe('truncated element at offset 0');
    expect(failure(() => read('04 82 01'))).toBe('truncated length at offset 0');
  });

  it('caps nesting depth', () => {
    const deep = hex('30 80 '.repeat(40) + '00 00 '.repeat(40));
    expect(failure(() => readNode(deep, 0, deep.length, { ber: true }))).toBe('nesting too deep at offset 66');
  });
});

describe('readNode (BER, as KMS sends CMS)', () => {
  it('finds the end-of-contents of indefinite lengths, nested', () => {
    const { b, node } = read('30 80 04 01 aa 30 80 04 01 bb 00 00 00 00', true);
    expect(node).toMatchObject({ indefinite: true, contentStart: 2, contentEnd: 12, end: 14 });
    const kids = children(b, node, { ber: true });
    expect(kids.map((k) => k.indefinite)).toEqual([false, true]);
  });

  it('refuses an indefinite length on a primitive element, and a missing end-of-contents', () => {
    expect(failure(() => read('04 80 01 00 00', true))).toBe('indefinite length on a primitive element at offset 0');
    expect(failure(() => read('30 80 04 01 aa', true))).toBe('truncated element at offset 5');
  });
});

describe('decodeOid', () => {
  it('decodes arcs, including the first two and multi-byte arcs', () => {
    expect(decodeOid(hex('2a 86 48 86 f7 0d 01 01 07'))).toBe('1.2.840.113549.1.1.7');
    expect(decodeOid(hex('2b 81 04 00 22'))).toBe('1.3.132.0.34');
    expect(decodeOid(hex('88 37'))).toBe('2.999');
  });

  it('refuses empty, non-minimal and truncated OIDs', () => {
    expect(failure(() => decodeOid(new Uint8Array()))).toBe('empty OID at offset -1');
    expect(failure(() => decodeOid(hex('2a 80 01')))).toBe('non-minimal OID arc at offset 1');
    expect(failure(() => decodeOid(hex('2a 86')))).toBe('truncated OID at offset 1');
  });
});

describe('decodeTime', () => {
  it('reads UTCTime with the RFC 5280 century rule, and GeneralizedTime', () => {
    expect(time(TAG.UTC_TIME, '491231235959Z').toISOString()).toBe('2049-12-31T23:59:59.000Z');
    expect(time(TAG.UTC_TIME, '500101000000Z').toISOString()).toBe('1950-01-01T00:00:00.000Z');
    expect(time(TAG.GENERALIZED_TIME, '20500101000000Z').toISOString()).toBe('2050-01-01T00:00:00.000Z');
  });

  it('refuses forms RFC 5280 does not allow (no Z, fractions, offsets)', () => {
    expect(failure(() => time(TAG.UTC_TIME, '4912312359Z'))).toBe('invalid time at offset 0');
    expect(failure(() => time(TAG.GENERALIZED_TIME, '20500101000000.5Z'))).toBe('invalid time at offset 0');
    expect(failure(() => time(TAG.UTC_TIME, '491231235959+0100'))).toBe('invalid time at offset 0');
  });

  it('refuses dates that do not exist instead of rolling them over', () => {
    for (const text of ['20241301000000Z', '20230229000000Z', '20240431000000Z', '20240101240000Z', '20240101006000Z', '20240101000060Z', '20240100000000Z']) {
      expect(failure(() => time(TAG.GENERALIZED_TIME, text)), text).toBe('invalid time at offset 0');
    }
    expect(time(TAG.GENERALIZED_TIME, '20240229000000Z').toISOString()).toBe('2024-02-29T00:00:00.000Z');
  });
});

describe('expectTag', () => {
  it('names what was expected and what was found', () => {
    const { node } = read('02 01 05');
    expect(expectTag(node, TAG.INTEGER, 'version')).toBe(node);
    expect(failure(() => expectTag(node, TAG.SEQUENCE, 'tbsCertificate'))).toBe('tbsCertificate: expected tag 0x30, found 0x2 at offset 0');
    expect(failure(() => expectTag(undefined, TAG.SEQUENCE, 'signature'))).toBe('missing signature at offset -1');
  });
});
