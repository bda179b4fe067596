import { describe, expect, it } from 'vitest';
import { CborDecodeError, CborTag, decodeCbor } from '../../src/internal/cbor.js';
import { encodeCbor, encodeIndefiniteMap } from '../../src/testing/cbor.js';

const hex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const fails = (h: string, message: RegExp) => expect(() => decodeCbor(hex(h))).toThrow(message);

describe('strict CBOR decoder', () => {
  it('decodes RFC 8949 Appendix A examples it supports', () => {
    expect(decodeCbor(hex('00'))).toBe(0);
    expect(decodeCbor(hex('1903e8'))).toBe(1000);
    expect(decodeCbor(hex('1bffffffffffffffff'))).toBe(18446744073709551615n);
    expect(decodeCbor(hex('3903e7'))).toBe(-1000);
    expect(decodeCbor(hex('3bffffffffffffffff'))).toBe(-18446744073709551616n);
    expect(decodeCbor(hex('6449455446'))).toBe('IETF');
    expect(decodeCbor(hex('62c3bc'))).toBe('ü');
    expect(decodeCbor(hex('4401020304'))).toEqual(hex('01020304'));
    expect(decodeCbor(hex('5f42010243030405ff'))).toEqual(hex('0102030405'));
    expect(decodeCbor(hex('7f657374726561646d696e67ff'))).toBe('streaming');
    expect(decodeCbor(hex('83010203'))).toEqual([1, 2, 3]);
    expect(decodeCbor(hex('9f018202039f0405ffff'))).toEqual([1, [2, 3], [4, 5]]);
    expect(decodeCbor(hex('a201020304'))).toEqual(new Map([[1, 2], [3, 4]]));
    expect(decodeCbor(hex('bf61610161629f0203ffff'))).toEqual(new Map<string, unknown>([['a', 1], ['b', [2, 3]]]));
    expect(decodeCbor(hex('f4'))).toBe(false);
    expect(decodeCbor(hex('f6'))).toBe(null);
    expect(decodeCbor(hex('c11a514b67b0'))).toEqual(new CborTag(1, 1363896240));
  });

  it('rejects what a verifier must not accept', () => {
    fails('a2616101616102', /duplicate map key "a"/);
    fails('bf01020103ff', /duplicate map key "1"/);
    fails('a1f601', /map key must be an integer or a text string/);
    fails('a1410101', /map key must be an integer or a text string/);
    fails('0000', /1 trailing bytes/);
    fails('62c328', /invalid UTF-8/);
    fails('f93c00', /unsupported simple value or float/);
    fails('1c', /reserved additional information 28/);
    fails('ff', /unexpected break/);
    fails('5f4101ff00', /trailing/);
    fails('5f6161ff', /indefinite string chunk of another type/);
    fails('5f5f4101ffff', /nested indefinite string chunk/);
    fails('1f', /indefinite length not allowed for major type 0/);
    fails('9f01', /unexpected end of input/);
  });

  it('checks declared lengths against the input before allocating', () => {
    fails('5bffffffffffffffff', /declared length 18446744073709551615 exceeds the 0 bytes left/);
    fails('9bffffffffffffffff', /declared length/);
    fails('bb00000000ffffffff', /declared length 4294967295 exceeds/);
    fails('5a0000000a0102', /declared length 10 exceeds the 2 bytes left/);
  });

  it('caps nesting depth', () => {
    expect(() => decodeCbor(new Uint8Array(100_000).fill(0x81))).toThrow(/nesting too deep/);
    expect(() => decodeCbor(new Uint8Array(100_000).fill(0x9f))).toThrow(/nesting too deep/);
    expect(() => decodeCbor(new Uint8Array(100_000).fill(0xc1))).toThrow(/nesting too deep/);
    expect(() => decodeCbor(hex('818181818100'), { maxDepth: 4 })).toThrow(CborDecodeError);
    expect(decodeCbor(hex('818181818100'), { maxDepth: 5 })).toEqual([[[[[0]]]]]);
  });

  it('reads what the test kit writes with cbor-x, including indefinite maps', () => {
    const value = new Map<string, never>([['b', [1, -2, 'x', new Uint8Array([9])] as never], ['a', null as never]]);
    expect(decodeCbor(encodeCbor(value))).toEqual(value);
    const indefinite = encodeIndefiniteMap(new Map([['k', 1]]));
    expect(Buffer.from(indefinite).toString('hex')).toBe('bf616b01ff');
    expect(Buffer.from(encodeCbor(2n ** 64n - 1n)).toString('hex')).toBe('1bffffffffffffffff');
    expect(Buffer.from(encodeCbor(-35)).toString('hex')).toBe('3822');
    // A millisecond timestamp is a 64-bit integer, as the NSM writes it, not cbor-x's default float64.
    expect(Buffer.from(encodeCbor(1_764_000_000_000)).toString('hex')).toBe('1b0000019ab697e800');
    expect(decodeCbor(encodeCbor(1_764_000_000_000))).toBe(1_764_000_000_000);
  });
});
