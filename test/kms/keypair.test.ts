import { constants, createPublicKey, privateDecrypt, publicEncrypt, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EphemeralKeyPool, generateEphemeralKeyPair, warmPrivateKey, type EphemeralKeyPair } from '../../src/kms/keypair.js';

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
  const preparing = (pool: EphemeralKeyPool) => (pool as unknown as { ready: Map<number, unknown> }).ready.size;

  it('hands a prepared pair out once, and prepares the next only on release(), after the request', async () => {
    const pool = new EphemeralKeyPool();
    await pool.prepare(2048);
    const first = await pool.take(2048);
    expect(preparing(pool)).toBe(0); // nothing is generating during the request
    pool.release(); // the size was taken from the prepared ones: prepare the next
    expect(preparing(pool)).toBe(1);
    const second = await pool.take(2048);
    expect(second.spki).not.toEqual(first.spki);
    pool.release();
    expect(preparing(pool)).toBe(1);
    pool.clear(); // drops the pair being prepared, and forgets what was taken
    expect(preparing(pool)).toBe(0);
  });

  it('with requests in flight, prepares the next pair only when the last one is over', async () => {
    const pool = new EphemeralKeyPool();
    await pool.prepare(2048);
    const a = pool.take(2048); // the prepared pair
    const b = pool.take(2048); // a fresh one
    await Promise.all([a, b]);
    pool.release(); // a is over, b is still in flight
    expect(preparing(pool)).toBe(0);
    pool.release(); // b is over too
    expect(preparing(pool)).toBe(1);
  });

  it('one-shot callers pay for exactly one pair: a fresh pair prepares nothing on release()', async () => {
    const pool = new EphemeralKeyPool();
    await pool.take(2048);
    pool.release();
    expect(preparing(pool)).toBe(0);
  });
});

describe('EphemeralKeyPool warm-up', () => {
  it('warms every pair prepared ahead once, before it can be taken, and never a fresh one', async () => {
    const warmed: EphemeralKeyPair[] = [];
    const pool = new EphemeralKeyPool({ warm: (pair) => warmed.push(pair) });
    await pool.prepare(2048);
    expect(warmed).toHaveLength(1);
    const prepared = await pool.take(2048);
    expect(warmed).toEqual([prepared]);
    const fresh = await pool.take(2048); // nothing prepared: generated for this caller, not warmed
    expect(warmed).toEqual([prepared]);
    expect(fresh.spki).not.toEqual(prepared.spki);
    pool.release();
    pool.release(); // the prepared size was taken: the next pair is prepared, and warmed
    await pool.prepare(2048);
    expect(warmed).toHaveLength(2);
    expect(warmed[1]!.spki).not.toEqual(prepared.spki);
  });

  /** A pool whose generations the test finishes or fails by hand. */
  function manualPool() {
    const pending: Array<{ resolve: (pair: EphemeralKeyPair) => void; reject: (err: Error) => void }> = [];
    const warmed: EphemeralKeyPair[] = [];
    const pool = new EphemeralKeyPool({ generate: () => new Promise((resolve, reject) => pending.push({ resolve, reject })), warm: (p) => warmed.push(p) });
    return { pool, pending, warmed };
  }

  it('a pair a request already waits for is handed out unwarmed: the warm-up would only make it wait longer', async () => {
    const pair = await generateEphemeralKeyPair(2048);
    const { pool, pending, warmed } = manualPool();
    void pool.prepare(2048);
    const taking = pool.take(2048);
    pending[0]!.resolve(pair);
    expect(await taking).toBe(pair);
    expect(warmed).toEqual([]);
  });

  it('a pair that finishes after clear() is not warmed, and a late failure does not drop the pair prepared since', async () => {
    const [a, b] = await Promise.all([generateEphemeralKeyPair(2048), generateEphemeralKeyPair(2048)]);
    const { pool, pending, warmed } = manualPool();
    void pool.prepare(2048).catch(() => {});
    pool.clear();
    const second = pool.prepare(2048); // a new generation after clear()
    pending[0]!.reject(new Error('the dropped generation fails late'));
    await Promise.resolve();
    pending[1]!.resolve(b);
    await second;
    // Still the prepared pair: the old failure did not remove it (else take() would wait on a new generation).
    expect(await Promise.race([pool.take(2048), Promise.resolve('generating anew')])).toBe(b);
    expect(warmed).toEqual([b]);
    const third = manualPool();
    void third.pool.prepare(2048);
    third.pool.clear();
    third.pending[0]!.resolve(a);
    await new Promise((r) => setImmediate(r));
    expect(third.warmed).toEqual([]); // dropped before it finished: no private-key work for nobody
  });

  it('a warm-up that throws costs nothing but the time: prepare() resolves and the pair is handed out', async () => {
    let calls = 0;
    const pool = new EphemeralKeyPool({
      warm: () => {
        calls++;
        throw new Error('no');
      },
    });
    await pool.prepare(2048);
    expect(calls).toBe(1);
    const pair = await pool.take(2048);
    expect(pair.privateKey.type).toBe('private');
  });

  it('the default warm-up leaves the key as it was, and KMS-shaped OAEP still opens with it', async () => {
    const pair = await generateEphemeralKeyPair(2048);
    const before = pair.privateKey.export({ format: 'jwk' });
    warmPrivateKey(pair);
    expect(pair.privateKey.export({ format: 'jwk' })).toEqual(before);
    const secret = randomBytes(32);
    const wrapped = publicEncrypt({ key: createPublicKey({ key: Buffer.from(pair.spki), format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret);
    expect(privateDecrypt({ key: pair.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped)).toEqual(secret);
  });
});
