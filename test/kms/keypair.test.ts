import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EphemeralKeyPool, generateEphemeralKeyPair } from '../../src/kms/keypair.js';

describe('generateEphemeralKeyPair', () => {
  it('makes an RSA pair whose SPKI is the private key\'s public half', async () => {
    const pair = await generateEphemeralKeyPair(2048);
    expect(pair.modulusLength).toBe(2048);
    expect(pair.privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const fromSpki = createPublicKey({ key: Buffer.from(pair.spki), format: 'der', type: 'spki' });
    expect(fromSpki.export({ format: 'jwk' })).toEqual(createPublicKey(pair.privateKey).export({ format: 'jwk' }));
  });

  it('refuses sizes KMS does not accept', async () => {
    await expect(generateEphemeralKeyPair(1024 as never)).rejects.toThrow(TypeError);
  });
});

describe('EphemeralKeyPool', () => {
  it('hands a prepared pair out once, and prepares the next only on refill(), after the request', async () => {
    const pool = new EphemeralKeyPool();
    await pool.prepare(2048);
    const first = await pool.take(2048);
    // Nothing is generating now: a take() without a prepared pair makes a fresh one (not the first again).
    expect((pool as unknown as { ready: Map<number, unknown> }).ready.size).toBe(0);
    const second = await pool.take(2048);
    expect(second.spki).not.toEqual(first.spki);
    pool.refill(); // the size was taken from the prepared ones: prepare the next
    expect((pool as unknown as { ready: Map<number, unknown> }).ready.size).toBe(1);
    const prepared = pool.take(2048);
    const third = await prepared;
    expect([first.spki, second.spki]).not.toContainEqual(third.spki);
    pool.refill();
    pool.clear(); // drops the pair being prepared, and forgets what was taken
    expect((pool as unknown as { ready: Map<number, unknown> }).ready.size).toBe(0);
    pool.refill();
    expect((pool as unknown as { ready: Map<number, unknown> }).ready.size).toBe(0);
    const fourth = await pool.take(2048);
    expect(fourth.spki).not.toEqual(third.spki);
  });

  it('one-shot callers pay for exactly one pair: refill() after a fresh pair prepares nothing', async () => {
    const pool = new EphemeralKeyPool();
    await pool.take(2048);
    pool.refill();
    // Nothing is being prepared: the pair was not from the prepared ones.
    expect((pool as unknown as { ready: Map<number, unknown> }).ready.size).toBe(0);
  });
});
