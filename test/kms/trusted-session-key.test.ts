import { createCipheriv, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sealInDomain, TrustedSessionKey, TSK_ENVELOPE_VERSION } from '../../src/kms/trusted-session-key.js';
import { openEnvelopeBySpec } from '../helpers/formats-reference.js';
import { forgeXaesOpen, forgeXaesSeal } from '../helpers/forge-xaes.js';

const meta = { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/tsk', pcr0: 'aa'.repeat(48), moduleId: 'i-0-enc0', obtainedAt: new Date(0) };
const enc = (s: string) => new TextEncoder().encode(s);
const code = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return 'no error';
};

describe('TrustedSessionKey envelope v2 (XAES-256-GCM)', () => {
  const keyBytes = randomBytes(32);
  const tsk = new TrustedSessionKey(Buffer.from(keyBytes), meta);

  it('writes version 2, the key id and a 24-byte nonce in a 33-byte authenticated header', () => {
    const sealed = tsk.encrypt(enc('hello agents'), enc('agent-7'));
    expect(TSK_ENVELOPE_VERSION).toBe(2);
    expect(sealed[0]).toBe(2);
    expect(Buffer.from(sealed.subarray(1, 9)).toString('hex')).toBe(tsk.metadata.keyId);
    expect(sealed.length).toBe(33 + 12 + 16);
    expect(Object.getPrototypeOf(sealed)).toBe(Uint8Array.prototype);
    expect(new TextDecoder().decode(tsk.decrypt(sealed, enc('agent-7')))).toBe('hello agents');
  });

  // u16be(29) ‖ "nitro-enclave-sdk/tsk/encrypt": the encrypt domain, written out by hand here.
  const encryptDomain = new Uint8Array([0, 29, ...enc('nitro-enclave-sdk/tsk/encrypt')]);

  it('is XAES-256-GCM with AAD = header ‖ u16 label length ‖ "nitro-enclave-sdk/tsk/encrypt" ‖ caller AAD: node-forge opens it and seals what it opens', () => {
    for (const aadLength of [0, 1, 5, 16, 31]) {
      const aad = randomBytes(aadLength);
      const pt = randomBytes(100 + aadLength);
      const sealed = tsk.encrypt(pt, aad);
      const header = sealed.subarray(0, 33);
      expect(forgeXaesOpen(keyBytes, sealed.subarray(9, 33), sealed.subarray(33), new Uint8Array([...header, ...aad]))).toBeNull(); // no domain: not the old AAD
      const opened = forgeXaesOpen(keyBytes, sealed.subarray(9, 33), sealed.subarray(33), new Uint8Array([...header, ...encryptDomain, ...aad]));
      expect(opened && Buffer.from(opened).equals(pt)).toBe(true);
      // and the other way: an envelope built entirely by forge opens here
      const nonce = randomBytes(24);
      const h = new Uint8Array([2, ...sealed.subarray(1, 9), ...nonce]);
      const body = forgeXaesSeal(keyBytes, nonce, pt, new Uint8Array([...h, ...encryptDomain, ...aad]));
      expect(Buffer.from(tsk.decrypt(new Uint8Array([...h, ...body]), aad)).equals(pt)).toBe(true);
    }
  });

  it('uses a fresh nonce each time', () => {
    const nonces = new Set(Array.from({ length: 200 }, () => Buffer.from(tsk.encrypt(enc('x')).subarray(9, 33)).toString('hex')));
    expect(nonces.size).toBe(200);
  });

  it('still opens v1 envelopes (AES-256-GCM, 96-bit nonce, AAD = 21-byte header ‖ caller AAD)', () => {
    const nonce = randomBytes(12);
    const header = Buffer.concat([Buffer.from([1]), Buffer.from(tsk.metadata.keyId, 'hex'), nonce]);
    const aad = enc('agent-7');
    const c = createCipheriv('aes-256-gcm', keyBytes, nonce);
    c.setAAD(Buffer.concat([header, aad]));
    const v1 = Buffer.concat([header, c.update(enc('old state')), c.final(), c.getAuthTag()]);
    expect(new TextDecoder().decode(tsk.decrypt(v1, aad))).toBe('old state');
    expect(code(() => tsk.decrypt(v1, enc('agent-8')))).toBe('ERR_TSK_DECRYPT_FAILED');
    expect(code(() => tsk.decrypt(v1.subarray(0, 36), aad))).toBe('ERR_TSK_MALFORMED');
  });

  it('authenticates the header: changing the version, key id or nonce fails', () => {
    const sealed = tsk.encrypt(enc('state'), enc('a'));
    const v1 = Uint8Array.from(sealed);
    v1[0] = 1; // a downgrade to v1 must not open
    expect(code(() => tsk.decrypt(v1, enc('a')))).toBe('ERR_TSK_DECRYPT_FAILED');
    for (const at of [9, 20, 21, 32, 33, sealed.length - 1]) {
      const bad = Uint8Array.from(sealed);
      bad[at]! ^= 0x40;
      expect(code(() => tsk.decrypt(bad, enc('a')))).toBe('ERR_TSK_DECRYPT_FAILED');
    }
    const otherId = Uint8Array.from(sealed);
    otherId[1]! ^= 1;
    expect(code(() => tsk.decrypt(otherId, enc('a')))).toBe('ERR_TSK_WRONG_KEY');
    expect(code(() => tsk.decrypt(sealed))).toBe('ERR_TSK_DECRYPT_FAILED');
  });

  it('refuses short envelopes, unknown versions and another key with coded errors', () => {
    const sealed = tsk.encrypt(enc('state'));
    expect(code(() => tsk.decrypt(sealed.subarray(0, 48)))).toBe('ERR_TSK_MALFORMED');
    expect(code(() => tsk.decrypt(new Uint8Array(0)))).toBe('ERR_TSK_MALFORMED');
    const v3 = Uint8Array.from(sealed);
    v3[0] = 3;
    expect(code(() => tsk.decrypt(v3))).toBe('ERR_TSK_MALFORMED');
    const other = new TrustedSessionKey(randomBytes(32), meta);
    expect(code(() => other.decrypt(sealed))).toBe('ERR_TSK_WRONG_KEY');
    expect(() => tsk.encrypt('text' as never)).toThrow(TypeError);
    expect(() => tsk.decrypt(sealed, 'aad' as never)).toThrow(TypeError);
  });

  // The seal feeds the cipher at most 64 KiB per update() (docs/performance-notes.md): every length
  // around a slice boundary, whole or in parts cut anywhere, is the spec's envelope of the concatenation.
  it('seals across update() slices exactly as the spec: lengths around 64 KiB boundaries, whole and in parts', () => {
    const K = 64 * 1024;
    for (const length of [K - 1, K, K + 1, 2 * K, 2 * K + 17, 200_003]) {
      const pt = randomBytes(length);
      expect(openEnvelopeBySpec(keyBytes, tsk.encrypt(pt, enc('agent-7')), 'encrypt', enc('agent-7'))?.equals(pt), `${length}`).toBe(true);
      for (const cut of [[0], [7], [K - 3, K + 5], [1, K, K + 1]]) {
        const parts = [...cut, length].map((end, i, ends) => pt.subarray(i === 0 ? 0 : ends[i - 1], end));
        const sealed = sealInDomain(tsk, 'temporalPayload', undefined, parts, undefined);
        expect(openEnvelopeBySpec(keyBytes, sealed, 'temporalPayload')?.equals(pt), `${length} cut at ${cut}`).toBe(true);
      }
    }
  });

  it('seals empty and 16 MiB plaintexts', () => {
    expect(tsk.decrypt(tsk.encrypt(new Uint8Array(0)))).toHaveLength(0);
    const big = randomBytes(16 * 1024 * 1024);
    expect(Buffer.from(tsk.decrypt(tsk.encrypt(big))).equals(big)).toBe(true);
  });
});

describe('TrustedSessionKey.dispose', () => {
  it('makes keyObject, encrypt and decrypt throw ERR_TSK_DISPOSED (issue 9)', () => {
    const tsk = new TrustedSessionKey(randomBytes(32), meta);
    const sealed = tsk.encrypt(enc('x'));
    expect(tsk.keyObject.symmetricKeySize).toBe(32);
    tsk.dispose();
    expect(tsk.disposed).toBe(true);
    expect(code(() => tsk.keyObject)).toBe('ERR_TSK_DISPOSED');
    expect(code(() => tsk.encrypt(enc('x')))).toBe('ERR_TSK_DISPOSED');
    expect(code(() => tsk.decrypt(sealed))).toBe('ERR_TSK_DISPOSED');
    tsk.dispose(); // idempotent
  });

  it('zeroes the key bytes it was given', () => {
    const key = randomBytes(32);
    const tsk = new TrustedSessionKey(key, meta);
    tsk.dispose();
    expect(key.every((b) => b === 0)).toBe(true);
  });

  it('never prints the key', () => {
    const key = randomBytes(32);
    const tsk = new TrustedSessionKey(Buffer.from(key), meta);
    for (const s of [inspect(tsk), JSON.stringify(tsk), String(tsk)]) {
      expect(s).not.toContain(key.toString('hex'));
      expect(s).not.toContain(key.toString('base64'));
    }
  });
});

describe('TrustedSessionKey', () => {
  it('takes only 32-byte keys', () => {
    expect(() => new TrustedSessionKey(new Uint8Array(16), { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/1234', pcr0: 'ab'.repeat(48), moduleId: 'm', obtainedAt: new Date() })).toThrow(expect.objectContaining({ code: 'ERR_TSK_INVALID_KEY' }));
  });
});
