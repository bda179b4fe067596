import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nativeGcm, nodeCryptoGcm, type Gcm } from '../../src/internal/gcm.js';
import { loadNative } from '../../src/internal/native.js';
import { XaesKey as BaseXaesKey, xaesOpen, xaesSeal } from '../../src/internal/xaes.js';
import { fixturesDir, SKIP_MESSAGE } from '../helpers/fixtures.js';
import { forgeXaesDerive, forgeXaesSeal } from '../helpers/forge-xaes.js';

interface Vector { key: string; nonce_ascii: string; plaintext_ascii: string; aad_ascii: string; L: string; K1: string; derived_key: string; derived_nonce: string; ciphertext_and_tag: string }
const vectorsPath = fixturesDir ? join(fixturesDir, 'xaes', 'vectors.json') : '';
const vectors: Vector[] = vectorsPath && existsSync(vectorsPath) ? (JSON.parse(readFileSync(vectorsPath, 'utf8')) as { vectors: Vector[] }).vectors : [];
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

// Every check runs over both AES-256-GCM implementations under the derivation (src/internal/gcm.ts).
const native = nativeGcm(loadNative());
if (!native) throw new Error('the native helper found no AES-256-GCM in OpenSSL');
for (const gcm of [native, nodeCryptoGcm] as Gcm[]) {
const XaesKey = class extends BaseXaesKey {
  constructor(key: Uint8Array) {
    super(key, gcm);
  }
};
describe.skipIf(vectors.length === 0)(`XAES-256-GCM (${gcm.name}) against the C2SP vectors (${vectorsPath || SKIP_MESSAGE})`, () => {
  it('has both vectors', () => expect(vectors).toHaveLength(2));

  for (const [i, v] of vectors.entries()) {
    it(`vector ${i + 1}: L, K1, derived key and nonce, ciphertext and tag`, () => {
      const key = Buffer.from(v.key, 'hex');
      const nonce = ascii(v.nonce_ascii);
      const { l, k1 } = BaseXaesKey.intermediates(key);
      expect(hex(l)).toBe(v.L);
      expect(hex(k1)).toBe(v.K1);
      const x = new XaesKey(key);
      expect(hex(x.deriveKey(nonce))).toBe(v.derived_key);
      expect(hex(nonce.subarray(12))).toBe(v.derived_nonce);
      const sealed = xaesSeal(x, nonce, ascii(v.plaintext_ascii), ascii(v.aad_ascii));
      expect(hex(sealed)).toBe(v.ciphertext_and_tag);
      expect(Buffer.from(xaesOpen(x, nonce, sealed, ascii(v.aad_ascii))).toString('latin1')).toBe(v.plaintext_ascii);
      // The independent node-forge construction agrees, so the vectors check both.
      const f = forgeXaesDerive(key, nonce);
      expect([hex(f.l), hex(f.k1), hex(f.kx)]).toEqual([v.L, v.K1, v.derived_key]);
      expect(hex(forgeXaesSeal(key, nonce, ascii(v.plaintext_ascii), ascii(v.aad_ascii)))).toBe(v.ciphertext_and_tag);
    });
  }

  it('refuses a flipped bit in ciphertext, tag or AAD, and a wrong nonce', () => {
    const v = vectors[1]!;
    const x = new XaesKey(Buffer.from(v.key, 'hex'));
    const nonce = ascii(v.nonce_ascii);
    const sealed = Buffer.from(v.ciphertext_and_tag, 'hex');
    for (const at of [0, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at]! ^= 1;
      expect(() => xaesOpen(x, nonce, bad, ascii(v.aad_ascii))).toThrow();
    }
    expect(() => xaesOpen(x, nonce, sealed, ascii('c2sp.org/XAES-256-GCN'))).toThrow();
    const other = Uint8Array.from(nonce);
    other[3]! ^= 1; // a byte that only goes into the key derivation
    expect(() => xaesOpen(x, other, sealed, ascii(v.aad_ascii))).toThrow();
  });
});

describe(`XAES-256-GCM (${gcm.name}) against node-forge on random inputs`, () => {
  it('agrees for keys whose L has the top bit set and clear, and many lengths', () => {
    let seen = 0;
    for (let i = 0; i < 40; i++) {
      const key = new Uint8Array(32).map(() => (Math.random() * 256) | 0);
      const nonce = new Uint8Array(24).map(() => (Math.random() * 256) | 0);
      const pt = new Uint8Array(i * 7).map(() => (Math.random() * 256) | 0);
      const aad = new Uint8Array(i % 19).map(() => (Math.random() * 256) | 0);
      seen |= BaseXaesKey.intermediates(key).l[0]! & 0x80 ? 1 : 2;
      expect(hex(xaesSeal(new XaesKey(key), nonce, pt, aad))).toBe(hex(forgeXaesSeal(key, nonce, pt, aad)));
    }
    expect(seen).toBe(3);
  });
});
}
