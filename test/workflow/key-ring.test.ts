// Sealed state with a TskKeyRing (TSK rotation): the newest key seals, the envelope's key id picks the
// opener, a ring that grows while in use is read at each call, and a ring that cannot seal is a TypeError.
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { createTskKeyRing, decryptWithKeyRing, encryptWithKeyRing } from '../../src/kms/key-ring.js';
import { openState, sealState, serveSealedActivities, type ExpectedBinding } from '../../src/workflow/index.js';
import { CHAIN, enc, dec, newKey } from './helpers.js';

const binding = { chainId: CHAIN, workflowId: 'wf', activity: 'analysis', seq: 1, producer: 'research' };
const expectHere: ExpectedBinding = { ...binding };
const keyIdOf = (sealed: Uint8Array) => {
  const b = (sealed[1]! << 8) | sealed[2]!;
  return Buffer.from(sealed.subarray(3 + b + 1, 3 + b + 9)).toString('hex');
};
const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('sealed state with a key ring', () => {
  it('seals with the newest key, opens by key id, and follows the ring as it grows and as keys are retired', () => {
    const v1 = newKey();
    const v2 = newKey();
    const ring = createTskKeyRing([v1]);
    const old = sealState(ring, enc('old'), binding);
    expect(keyIdOf(old)).toBe(v1.metadata.keyId);
    ring.add(v2);
    const current = sealState(ring, enc('new'), binding);
    expect(keyIdOf(current)).toBe(v2.metadata.keyId);
    expect(dec(openState(ring, old, expectHere).plaintext)).toBe('old');
    expect(dec(openState(ring, current, expectHere).plaintext)).toBe('new');
    const retired = createTskKeyRing([v2]);
    expect(() => openState(retired, old, expectHere)).toThrow(`sealed with key id ${v1.metadata.keyId}, not in this key ring (${v2.metadata.keyId})`);
    expect(codeOf(() => openState(retired, old, expectHere))).toBe('ERR_SEALED_WRONG_KEY');
  });

  it('refuses a ring that cannot seal, or hands out something other than a TrustedSessionKey, with TypeError', () => {
    const message = 'key must be a TrustedSessionKey, a non-empty array of them or a non-empty TskKeyRing';
    const sealed = sealState(newKey(), enc('x'), binding);
    expect(() => sealState(createTskKeyRing(), enc('x'), binding)).toThrow(new TypeError(message));
    expect(() => openState(createTskKeyRing(), sealed, expectHere)).toThrow(new TypeError(message));
    const k = newKey();
    const forged = { add() {}, get: () => ({ metadata: { keyId: k.metadata.keyId } }), newest: k, keyIds: [k.metadata.keyId] };
    expect(() => openState(forged as never, sealState(k, enc('x'), binding), expectHere)).toThrow(new TypeError(message));
    const dir = mkdtempSync(join(tmpdir(), 'nes-ring-'));
    try {
      expect(() => serveSealedActivities({ listen: { family: 'unix', path: join(dir, 's.sock') }, key: createTskKeyRing(), handlers: { echo: { from: 'client', next: 'echo', run: (x) => x } } })).toThrow(new TypeError(message));
      expect(() => serveSealedActivities({ listen: { family: 'unix', path: join(dir, 's.sock') }, key: [newKey(), {} as never], handlers: { echo: { from: 'client', next: 'echo', run: (x) => x } } })).toThrow(new TypeError(message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TSK envelopes with a key ring', () => {
  it('encrypts with the newest key and decrypts by the envelope’s key id, before and after a rotation', () => {
    const v1 = newKey();
    const v2 = newKey();
    const ring = createTskKeyRing([v1]);
    const aad = enc('note-7');
    const old = encryptWithKeyRing(ring, enc('old'), aad);
    const legacy = v1.encrypt(enc('direct'));
    ring.add(v2);
    const current = encryptWithKeyRing(ring, enc('new'), aad);
    expect(Buffer.from(current.subarray(1, 9)).toString('hex')).toBe(v2.metadata.keyId);
    expect(dec(decryptWithKeyRing(ring, old, aad))).toBe('old');
    expect(dec(decryptWithKeyRing(ring, current, aad))).toBe('new');
    expect(dec(decryptWithKeyRing(ring, legacy))).toBe('direct');
    const retired = createTskKeyRing([v2]);
    expect(() => decryptWithKeyRing(retired, old, aad)).toThrow(`envelope was sealed with key id ${v1.metadata.keyId}, not in this key ring (${v2.metadata.keyId})`);
    expect(codeOf(() => decryptWithKeyRing(retired, old, aad))).toBe('ERR_TSK_WRONG_KEY');
    expect(codeOf(() => decryptWithKeyRing(ring, old, enc('other')))).toBe('ERR_TSK_DECRYPT_FAILED');
    expect(codeOf(() => decryptWithKeyRing(ring, old.subarray(0, 5)))).toBe('ERR_TSK_MALFORMED');
    // A sealed state's envelope is in another domain: the ring's decrypt does not open it.
    const state = sealState(ring, enc('s'), binding);
    expect(codeOf(() => decryptWithKeyRing(ring, state.subarray(state.length - (33 + 1 + 16))))).toBe('ERR_TSK_DECRYPT_FAILED');
    expect(() => encryptWithKeyRing(createTskKeyRing(), enc('x'))).toThrow(new TypeError('ring is empty: add a key before encrypting'));
    expect(() => encryptWithKeyRing(v1 as never, enc('x'))).toThrow(TypeError);
  });
});
