import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NitroEnclaveError, createEnclaveSealer, sealToEnclave } from '../../src/seal/index.js';
import { testImagePcr } from '../../src/testing/index.js';
import { simulatedReceiver } from '../helpers/seal.js';

const text = (s: string) => new TextEncoder().encode(s);
const nonce = () => crypto.getRandomValues(new Uint8Array(32));

describe('sealToEnclave → receiver.open on the simulated enclave', () => {
  it('round trip: the client verifies the document and seals; the enclave opens', async () => {
    const { receiver, trustAnchors, expected } = await simulatedReceiver();
    const n = nonce();
    const document = await receiver.attest(n);
    const message = await sealToEnclave(document, text('my API key'), { expected: expected(n), trustAnchors });
    expect(message[0]).toBe(2);
    // 39-byte header (15 + u64 time + 16-byte id) + 65-byte P-256 enc + plaintext + 16-byte tag
    expect(message.length).toBe(39 + 65 + 10 + 16);
    const plaintext = await receiver.open(message);
    expect(new TextDecoder().decode(plaintext)).toBe('my API key');
    plaintext.fill(0);
  });

  it('round trip with P-384, application info and an empty plaintext', async () => {
    const { receiver, trustAnchors, expected } = await simulatedReceiver({}, { suite: 'P384-SHA384-AES256GCM' });
    const n = nonce();
    const sealer = await createEnclaveSealer(await receiver.attest(n), { expected: expected(n), trustAnchors, info: text('order 42') });
    const message = await sealer.seal(new Uint8Array(0));
    expect(message.length).toBe(39 + 97 + 16);
    expect(await receiver.open(message, { info: text('order 42') })).toEqual(new Uint8Array(0));
    await expect(receiver.open(message)).rejects.toMatchObject({ code: 'ERR_SEAL_DECRYPT_FAILED' });
    await expect(receiver.open(message, { info: text('order 43') })).rejects.toMatchObject({ code: 'ERR_SEAL_DECRYPT_FAILED' });
  });

  it('with an injected verifier: the Node fast path of nitro-enclave-sdk/attestation (node condition)', async () => {
    const { createAttestationVerifier } = await import('nitro-enclave-sdk/attestation');
    const { receiver, trustAnchors, expected } = await simulatedReceiver();
    const n = nonce();
    const verifier = createAttestationVerifier();
    const message = await sealToEnclave(await receiver.attest(n), text('fast path'), { expected: expected(n), trustAnchors, verifier });
    expect(new TextDecoder().decode(await receiver.open(message))).toBe('fast path');
    await expect(sealToEnclave(await receiver.attest(n), text('x'), { expected: expected(nonce()), trustAnchors, verifier })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_NONCE_MISMATCH' });
  });

  it('two seals of the same plaintext differ (fresh ephemeral key each time)', async () => {
    const { receiver, trustAnchors, expected } = await simulatedReceiver();
    const n = nonce();
    const sealer = await createEnclaveSealer(await receiver.attest(n), { expected: expected(n), trustAnchors });
    const [a, b] = [await sealer.seal(text('x')), await sealer.seal(text('x'))];
    expect(a).not.toEqual(b);
    expect(await receiver.open(a)).toEqual(await receiver.open(b));
  });
});

describe('nothing is sealed to a document that fails verification', () => {
  // A plaintext that would throw if anything read it: sealing must stop before touching it.
  function untouchable(): Uint8Array {
    const bytes = new Uint8Array(8);
    return new Proxy(bytes, {
      get(target, prop, receiver) {
        if (prop === Symbol.toStringTag || prop === 'constructor') return Reflect.get(target, prop, receiver);
        throw new Error(`plaintext was read (${String(prop)}) before verification finished`);
      },
    });
  }

  it('wrong PCRs: ERR_ATTESTATION_PCR_MISMATCH, and the plaintext is never read', async () => {
    const { receiver, trustAnchors } = await simulatedReceiver();
    const n = nonce();
    const document = await receiver.attest(n);
    const sealer = createEnclaveSealer(document, { expected: { pcrs: { 0: testImagePcr('another image') }, nonce: n }, trustAnchors });
    await expect(sealer).rejects.toMatchObject({ code: 'ERR_ATTESTATION_PCR_MISMATCH' });
    await expect(sealToEnclave(document, untouchable(), { expected: { pcrs: { 0: testImagePcr('another image') }, nonce: n }, trustAnchors })).rejects.toMatchObject({
      code: 'ERR_ATTESTATION_PCR_MISMATCH',
    });
  });

  it('the parent swaps its own key into a genuine document: ERR_ATTESTATION_SIGNATURE_INVALID, nothing sealed', async () => {
    const { receiver, trustAnchors, expected } = await simulatedReceiver();
    const n = nonce();
    const document = await receiver.attest(n);
    const attacker = await simulatedReceiver();
    const at = Buffer.from(document).indexOf(Buffer.from(receiver.publicKey));
    expect(at).toBeGreaterThan(0);
    const swapped = document.slice();
    swapped.set(attacker.receiver.publicKey, at);
    await expect(sealToEnclave(swapped, untouchable(), { expected: expected(n), trustAnchors })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_SIGNATURE_INVALID' });
  });

  it('wrong nonce: ERR_ATTESTATION_NONCE_MISMATCH, and the plaintext is never read', async () => {
    const { receiver, trustAnchors, expected } = await simulatedReceiver();
    const document = await receiver.attest(nonce());
    const plaintext = untouchable();
    expect(plaintext instanceof Uint8Array).toBe(true);
    await expect(sealToEnclave(document, plaintext, { expected: expected(nonce()), trustAnchors })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_NONCE_MISMATCH' });
  });

  it('stale document: ERR_ATTESTATION_STALE', async () => {
    const { receiver, trustAnchors, expected } = await simulatedReceiver();
    const n = nonce();
    const document = await receiver.attest(n);
    const later = new Date(Date.now() + 61_000);
    await expect(sealToEnclave(document, untouchable(), { expected: expected(n), trustAnchors, currentDate: later })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_STALE' });
  });

  it('a document from a PKI that is not the trust anchor: ERR_ATTESTATION_UNTRUSTED_ROOT (default AWS anchor)', async () => {
    const { receiver, expected } = await simulatedReceiver();
    const n = nonce();
    await expect(sealToEnclave(await receiver.attest(n), text('secret'), { expected: expected(n) })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_UNTRUSTED_ROOT' });
  });

  it('a debug-mode enclave is refused unless allowDebug', async () => {
    const { receiver, trustAnchors } = await simulatedReceiver({ debugMode: true });
    const n = nonce();
    const document = await receiver.attest(n);
    const zero = new Uint8Array(48);
    await expect(createEnclaveSealer(document, { expected: { pcrs: { 0: zero }, nonce: n }, trustAnchors })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_DEBUG_MODE' });
    await expect(createEnclaveSealer(document, { expected: { pcrs: { 0: zero }, nonce: n, allowDebug: true }, trustAnchors })).resolves.toBeDefined();
  });

  it('a verified document without a sealing key: ERR_SEAL_ATTESTED_KEY_INVALID; with a foreign key format: ERR_SEAL_UNSUPPORTED_VERSION / _SUITE', async () => {
    const { enclave, nsm, trustAnchors, expected } = await simulatedReceiver();
    const n = nonce();
    const seal = (doc: Uint8Array) => sealToEnclave(doc, text('secret'), { expected: expected(n), trustAnchors });
    await expect(seal(await nsm.attestation({ nonce: n }))).rejects.toMatchObject({ code: 'ERR_SEAL_ATTESTED_KEY_INVALID', message: 'the attestation document binds no public_key to seal to' });
    const spki = new Uint8Array(91).fill(0x30);
    await expect(seal(await nsm.attestation({ nonce: n, publicKey: spki }))).rejects.toMatchObject({ code: 'ERR_SEAL_UNSUPPORTED_VERSION' });
    const x25519 = new Uint8Array([1, 0, 0x20, 0, 1, 0, 2, ...new Uint8Array(32)]);
    await expect(seal(await nsm.attestation({ nonce: n, publicKey: x25519 }))).rejects.toMatchObject({ code: 'ERR_SEAL_UNSUPPORTED_SUITE' });
    const notAPoint = new Uint8Array([1, 0, 0x10, 0, 1, 0, 2, 4, ...new Uint8Array(64).fill(1)]);
    await expect(seal(await nsm.attestation({ nonce: n, publicKey: notAPoint }))).rejects.toMatchObject({ code: 'ERR_SEAL_ATTESTED_KEY_INVALID' });
    expect(enclave).toBeDefined();
  });

  it('options: expectations are required (TypeError), as sealing to any enclave is never meant', async () => {
    const { receiver, trustAnchors } = await simulatedReceiver();
    const document = await receiver.attest(nonce());
    const p = text('secret');
    await expect(sealToEnclave(document, p, {} as never)).rejects.toThrow(TypeError);
    await expect(sealToEnclave(document, p, { expected: { pcrs: {}, maxAgeMs: 1000 }, trustAnchors })).rejects.toThrow(/at least one PCR/);
    await expect(sealToEnclave(document, p, { expected: { pcrs: { 0: testImagePcr('image') } }, trustAnchors })).rejects.toThrow(/nonce or expected.maxAgeMs/);
    await expect(sealToEnclave(document, 'secret' as never, { expected: { pcrs: { 0: testImagePcr('image') }, maxAgeMs: 1000 }, trustAnchors })).rejects.toThrow(TypeError);
  });
});

describe('receiver.open refuses what it must', () => {
  async function sealed() {
    const ctx = await simulatedReceiver();
    const n = nonce();
    const message = await sealToEnclave(await ctx.receiver.attest(n), text('top secret'), { expected: ctx.expected(n), trustAnchors: ctx.trustAnchors });
    return { ...ctx, message };
  }

  it('every single-bit flip is refused with a coded error', async () => {
    const { receiver, message } = await sealed();
    const codes = new Set<string>();
    for (let i = 0; i < message.length; i++) {
      const tampered = message.slice();
      tampered[i]! ^= 0x01;
      const err = await receiver.open(tampered).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, `bit flip at byte ${i} opened`).toBeInstanceOf(NitroEnclaveError);
      codes.add((err as NitroEnclaveError).code);
    }
    // version byte → unsupported version; suite ids → unsupported suite; key id → not found; enc, ciphertext, tag → decrypt failed
    expect([...codes].sort()).toEqual(['ERR_SEAL_DECRYPT_FAILED', 'ERR_SEAL_KEY_NOT_FOUND', 'ERR_SEAL_UNSUPPORTED_SUITE', 'ERR_SEAL_UNSUPPORTED_VERSION']);
  });

  it('truncated, empty and non-byte messages: ERR_SEAL_MALFORMED', async () => {
    const { receiver, message } = await sealed();
    await expect(receiver.open(new Uint8Array(0))).rejects.toMatchObject({ code: 'ERR_SEAL_MALFORMED' });
    await expect(receiver.open(message.subarray(0, 39 + 65 + 15))).rejects.toMatchObject({
      code: 'ERR_SEAL_MALFORMED',
      message: 'the sealed message is 119 bytes; P256-SHA256-AES256GCM needs at least 120',
    });
    await expect(receiver.open('x' as never)).rejects.toMatchObject({ code: 'ERR_SEAL_MALFORMED' });
    await expect(receiver.open(message.subarray(0, message.length - 1))).rejects.toMatchObject({ code: 'ERR_SEAL_DECRYPT_FAILED' });
  });

  it('a message sealed to another enclave does not open (another key), not even with its key id copied', async () => {
    const a = await sealed();
    const b = await simulatedReceiver({ pki: a.enclave.pki });
    await expect(b.receiver.open(a.message)).rejects.toMatchObject({ code: 'ERR_SEAL_KEY_NOT_FOUND' });
    // The attacker rewrites the key id to b's: HPKE still binds a's key (kem_context, info), so it fails.
    const forged = a.message.slice();
    const bKeyId = new Uint8Array(await crypto.subtle.digest('SHA-256', b.receiver.publicKey)).subarray(0, 8);
    forged.set(bKeyId, 7);
    await expect(b.receiver.open(forged)).rejects.toMatchObject({ code: 'ERR_SEAL_DECRYPT_FAILED' });
  });

  it('a message for the rotated-away key opens during the grace period, then fails with ERR_SEAL_KEY_NOT_FOUND', async () => {
    let now = Date.now();
    const ctx = await simulatedReceiver({}, { previousKeyGraceMs: 30_000, clock: () => new Date(now) });
    const n = nonce();
    const oldDoc = await ctx.receiver.attest(n);
    const oldKey = ctx.receiver.publicKey;
    const message = await sealToEnclave(oldDoc, text('late'), { expected: ctx.expected(n), trustAnchors: ctx.trustAnchors });
    await ctx.receiver.rotate();
    expect(ctx.receiver.publicKey).not.toEqual(oldKey);
    now += 30_000;
    expect(new TextDecoder().decode(await ctx.receiver.open(message))).toBe('late');
    now += 1;
    await expect(ctx.receiver.open(message)).rejects.toMatchObject({ code: 'ERR_SEAL_KEY_NOT_FOUND' });
    // A document attested after rotation binds the new key, and that works.
    const n2 = nonce();
    const fresh = await sealToEnclave(await ctx.receiver.attest(n2), text('new'), { expected: ctx.expected(n2), trustAnchors: ctx.trustAnchors });
    expect(new TextDecoder().decode(await ctx.receiver.open(fresh))).toBe('new');
  });

  it('previousKeyGraceMs: 0 drops the old key at rotation; only one previous key is kept', async () => {
    const ctx = await simulatedReceiver({}, { previousKeyGraceMs: 0 });
    const n = nonce();
    const message = await sealToEnclave(await ctx.receiver.attest(n), text('x'), { expected: ctx.expected(n), trustAnchors: ctx.trustAnchors });
    await ctx.receiver.rotate();
    await expect(ctx.receiver.open(message)).rejects.toMatchObject({ code: 'ERR_SEAL_KEY_NOT_FOUND' });

    const graceful = await simulatedReceiver();
    const m = nonce();
    const first = await sealToEnclave(await graceful.receiver.attest(m), text('x'), { expected: graceful.expected(m), trustAnchors: graceful.trustAnchors });
    await graceful.receiver.rotate();
    await graceful.receiver.rotate();
    await expect(graceful.receiver.open(first)).rejects.toMatchObject({ code: 'ERR_SEAL_KEY_NOT_FOUND' });
  });

  it('the document binds the receiver key, which is a non-extractable WebCrypto key', async () => {
    const { receiver, enclave, trustAnchors } = await simulatedReceiver();
    const { verifyAttestationDocument } = await import('../../src/attestation/index.js');
    const n = nonce();
    const facts = await verifyAttestationDocument(await receiver.attest(n, { userData: text('v1') }), { trustAnchors, nonce: n, publicKey: receiver.publicKey, userData: text('v1') });
    expect(facts.pcrsHex[0]).toBe(enclave.imageSha384);
    expect([...receiver.publicKey.subarray(0, 7)]).toEqual([1, 0, 0x10, 0, 1, 0, 2]);
  });

  it('options are checked (TypeError)', async () => {
    const { nsm } = await simulatedReceiver();
    const { createAttestedReceiver } = await import('../../src/seal/index.js');
    await expect(createAttestedReceiver({} as never)).rejects.toThrow(TypeError);
    await expect(createAttestedReceiver({ nsm, suite: 'X25519' as never })).rejects.toThrow(/suite must be one of/);
    await expect(createAttestedReceiver({ nsm, previousKeyGraceMs: -1 })).rejects.toThrow(TypeError);
  });
});

describe('property: no plaintext in any error', () => {
  it('errors from sealing and opening never carry the plaintext (message, cause, stack)', async () => {
    const ctx = await simulatedReceiver();
    const n = nonce();
    const document = await ctx.receiver.attest(n);
    const sealer = await createEnclaveSealer(document, { expected: ctx.expected(n), trustAnchors: ctx.trustAnchors });
    const secretText = (bytes: Uint8Array) => `SECRET-${Buffer.from(bytes).toString('hex')}`;
    const leaks = (err: unknown, secret: string) => {
      const seen = new Set<unknown>();
      const walk = (e: unknown): string => {
        if (!e || typeof e !== 'object' || seen.has(e)) return String(e);
        seen.add(e);
        const x = e as { message?: unknown; stack?: unknown; cause?: unknown };
        return `${String(x.message)} ${String(x.stack)} ${JSON.stringify(e)} ${walk(x.cause)}`;
      };
      return walk(err).includes(secret);
    };
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat(200), fc.boolean(), async (raw, at, wrongInfo) => {
        const secret = secretText(raw);
        const plaintext = text(secret);
        const message = await sealer.seal(plaintext);
        const tampered = message.slice();
        tampered[at % tampered.length]! ^= 0x80;
        const errors: unknown[] = [];
        await ctx.receiver.open(wrongInfo ? message : tampered, wrongInfo ? { info: text(secret) } : undefined).catch((e: unknown) => errors.push(e));
        await sealToEnclave(document, plaintext, { expected: { ...ctx.expected(nonce()) }, trustAnchors: ctx.trustAnchors }).catch((e: unknown) => errors.push(e));
        expect(errors).toHaveLength(2);
        for (const e of errors) expect(leaks(e, secret)).toBe(false);
      }),
      { numRuns: 40 },
    );
  });
});

describe('replay protection (createAttestedReceiver({ replayWindowMs }))', () => {
  async function setup(receiverOptions: Record<string, unknown> = {}) {
    let now = Date.parse('2026-06-01T12:00:00Z');
    const ctx = await simulatedReceiver({}, { clock: () => new Date(now), ...receiverOptions });
    const n = nonce();
    let sealerNow = now;
    const sealer = await createEnclaveSealer(await ctx.receiver.attest(n), { expected: { ...ctx.expected(n), maxAgeMs: 10 * 365 * 86_400_000 }, trustAnchors: ctx.trustAnchors, clock: () => new Date(sealerNow) });
    return {
      ...ctx,
      sealer,
      advance: (ms: number) => (now += ms),
      setSealerClock: (ms: number) => (sealerNow = ms),
      now: () => now,
    };
  }

  it('without it, the same message opens any number of times (what docs/seal.md warns about)', async () => {
    const { receiver, sealer } = await setup();
    const message = await sealer.seal(text('transfer 100'));
    for (let i = 0; i < 3; i++) expect(new TextDecoder().decode(await receiver.open(message))).toBe('transfer 100');
  });

  it('with it, a message opens once: the replay is ERR_SEAL_REPLAYED; another message with the same plaintext opens', async () => {
    const { receiver, sealer } = await setup({ replayWindowMs: 60_000 });
    const message = await sealer.seal(text('transfer 100'));
    expect(new TextDecoder().decode(await receiver.open(message))).toBe('transfer 100');
    await expect(receiver.open(message)).rejects.toMatchObject({ code: 'ERR_SEAL_REPLAYED', message: 'this message was opened before (same message id within the replay window)' });
    expect(new TextDecoder().decode(await receiver.open(await sealer.seal(text('transfer 100'))))).toBe('transfer 100');
  });

  it('refuses a message stamped outside the window (either way) with ERR_SEAL_STALE, and an unstamped v1 message', async () => {
    const { receiver, sealer, advance, setSealerClock, now } = await setup({ replayWindowMs: 60_000 });
    const message = await sealer.seal(text('late'));
    advance(60_001); // the parent held it back
    await expect(receiver.open(message)).rejects.toMatchObject({ code: 'ERR_SEAL_STALE', message: 'the message was sealed at 2026-06-01T12:00:00.000Z, outside the 60000 ms replay window around 2026-06-01T12:01:00.001Z' });
    setSealerClock(now() + 60_001);
    await expect(receiver.open(await sealer.seal(text('future')))).rejects.toMatchObject({ code: 'ERR_SEAL_STALE' });
    setSealerClock(now() - 59_000);
    expect(new TextDecoder().decode(await receiver.open(await sealer.seal(text('in time'))))).toBe('in time');
    // A v1 message (no time, no id), as a 0.1 client sealed it: the v1 layout with the same HPKE.
    const v1 = await sealV1(receiver.publicKey, text('old client'));
    await expect(receiver.open(v1)).rejects.toMatchObject({ code: 'ERR_SEAL_UNSUPPORTED_VERSION', message: 'the sealed message has version 1, which carries no time or message id; this receiver refuses replays and needs version 2' });
    const lenient = await setup();
    expect(new TextDecoder().decode(await lenient.receiver.open(await sealV1(lenient.receiver.publicKey, text('old client'))))).toBe('old client');
  });

  it('the time and id are authenticated: rewriting them fails to open (ERR_SEAL_DECRYPT_FAILED), and a failed open does not burn the id', async () => {
    const { receiver, sealer, now } = await setup({ replayWindowMs: 60_000 });
    const message = await sealer.seal(text('x'));
    const retimed = message.slice();
    new DataView(retimed.buffer).setBigUint64(15, BigInt(now() + 1));
    await expect(receiver.open(retimed)).rejects.toMatchObject({ code: 'ERR_SEAL_DECRYPT_FAILED' });
    const renamed = message.slice();
    renamed[23]! ^= 1;
    await expect(receiver.open(renamed)).rejects.toMatchObject({ code: 'ERR_SEAL_DECRYPT_FAILED' });
    expect(new TextDecoder().decode(await receiver.open(message))).toBe('x');
  });

  it('the cache is bounded: when full, the oldest id is forgotten and everything stamped at or before it is ERR_SEAL_STALE (fails closed)', async () => {
    const { receiver, sealer, setSealerClock, now } = await setup({ replayWindowMs: 60_000, maxReplayCacheEntries: 2 });
    const t0 = now();
    const m = [];
    for (let i = 0; i < 3; i++) {
      setSealerClock(t0 - 3000 + i * 1000);
      m.push(await sealer.seal(text(`m${i}`)));
    }
    await receiver.open(m[0]!);
    await receiver.open(m[1]!);
    await receiver.open(m[2]!); // m0 is forgotten
    await expect(receiver.open(m[0]!)).rejects.toMatchObject({ code: 'ERR_SEAL_STALE', message: expect.stringContaining('before the oldest time the full replay cache still covers') });
    await expect(receiver.open(m[1]!)).rejects.toMatchObject({ code: 'ERR_SEAL_REPLAYED' });
  });

  it('options are checked (TypeError)', async () => {
    await expect(setup({ replayWindowMs: 0 })).rejects.toThrow(new TypeError('replayWindowMs must be a positive integer of milliseconds'));
    await expect(setup({ maxReplayCacheEntries: 5 })).rejects.toThrow(new TypeError('maxReplayCacheEntries needs replayWindowMs'));
  });
});

/** The version 1 layout (no time, no id), sealed with @hpke/core as 0.1 did: for the compatibility checks. */
async function sealV1(attestedKey: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  const { suiteByName, buildInfo, sha256 } = await import('../../src/seal/format.js');
  const suite = suiteByName('P256-SHA256-AES256GCM');
  const keyHash = await sha256(attestedKey);
  const recipientPublicKey = await suite.hpke.kem.deserializePublicKey(attestedKey.slice(7));
  const sender = await suite.hpke.createSenderContext({ recipientPublicKey, info: buildInfo(keyHash, new Uint8Array(0)) });
  const header = new Uint8Array([1, 0x00, 0x10, 0x00, 0x01, 0x00, 0x02, ...keyHash.subarray(0, 8), ...new Uint8Array(sender.enc)]);
  const ct = new Uint8Array(await sender.seal(plaintext, header));
  return new Uint8Array([...header, ...ct]);
}
