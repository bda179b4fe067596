import { DefaultFailureConverter, defaultPayloadConverter, type Payload } from '@temporalio/common';
import { decodeFailure, decodeFromPayloadsAtIndex, encodeFailure, encodeToPayloads, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import proto from '@temporalio/proto';
import { createCipheriv, randomBytes } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NitroEnclaveError } from '../../src/errors.js';
import { createTskKeyRing, createTskPayloadCodec } from '../../src/temporal/index.js';
import { failureConverter } from '../../src/temporal/failure-converter.js';
import { openPayloadBySpec } from '../helpers/formats-reference.js';
import { forms, makeTsk } from './helpers.js';

const SECRET = 'agent-7 diagnosis: classified-4711';
const str = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);
const meta = (p: Payload) => Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, str(v)]));

async function codecError(promise: Promise<unknown>): Promise<NitroEnclaveError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NitroEnclaveError);
  return err as NitroEnclaveError;
}

describe('createTskPayloadCodec through Temporal’s own data converter helpers', () => {
  it('encrypts the whole serialized Payload; only encoding, key id and cipher tag stay readable', async () => {
    const { tsk } = makeTsk();
    const converter = loadDataConverter({ payloadCodecs: [createTskPayloadCodec({ keys: tsk })] });
    const [payload] = (await encodeToPayloads(converter, { note: SECRET }))!;
    expect(meta(payload!)).toEqual({ encoding: 'binary/encrypted', 'encryption-key-id': tsk.metadata.keyId, 'encryption-cipher': `tsk-v${payload!.data![0]}` });
    const wire = Buffer.from(proto.temporal.api.common.v1.Payload.encode(payload!).finish());
    expect(wire.includes(SECRET)).toBe(false);
    expect(wire.includes('json/plain')).toBe(false); // the inner metadata is sealed too
    expect(await decodeFromPayloadsAtIndex(converter, 0, [payload!])).toEqual({ note: SECRET });
  });

  it('the hand-appended data field serializes exactly what @temporalio/proto decodes (any metadata, data length, empty data)', async () => {
    const { tsk, raw } = makeTsk();
    const codec = createTskPayloadCodec({ keys: tsk });
    const P = proto.temporal.api.common.v1.Payload;
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.string({ maxLength: 12 }), fc.uint8Array({ maxLength: 40 }), { maxKeys: 4 }),
        fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n).fill(7))),
        async (metadata, data) => {
          const payload = { metadata, data };
          const [sealed] = await codec.encode([payload]);
          const inner = openPayloadBySpec(raw, sealed!)!;
          expect(P.toObject(P.decode(inner), { bytes: String })).toEqual(P.toObject(P.decode(P.encode(payload).finish()), { bytes: String }));
        },
      ),
      { numRuns: 200 },
    );
  });

  // Worker.runReplayHistory (and any worker with debugMode) runs the workflow in a vm context on the
  // codec's own thread: its payloads' bytes are Uint8Arrays of the sandbox's realm, not of ours.
  it('payloads made in another realm (a workflow sandbox, as replay and debugMode deliver them) seal as the same bytes and open', async () => {
    const { tsk, raw } = makeTsk();
    const codec = createTskPayloadCodec({ keys: tsk });
    const P = proto.temporal.api.common.v1.Payload;
    // Bytes made by the sandbox's own Uint8Array; `from` > 0 gives a view that does not start its buffer.
    const inSandbox = runInNewContext('(text, from) => new Uint8Array(Array.from(text, (c) => c.charCodeAt(0))).subarray(from)') as (text: string, from: number) => Uint8Array;
    const sandbox: Payload = { metadata: { encoding: inSandbox('json/plain', 0) }, data: inSandbox('xx"a secret from the sandbox"', 2) };
    const empty: Payload = { metadata: { encoding: inSandbox('binary/null', 0) }, data: inSandbox('', 0) };
    expect(sandbox.data instanceof Uint8Array).toBe(false); // the realm under test, not ours
    const [sealed, sealedEmpty] = await codec.encode([sandbox, empty]);
    const ours = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"a secret from the sandbox"') };
    expect(Buffer.from(openPayloadBySpec(raw, sealed!)!)).toEqual(Buffer.from(P.encode(ours).finish()));
    expect(Buffer.from(openPayloadBySpec(raw, sealedEmpty!)!)).toEqual(Buffer.from(P.encode({ metadata: { encoding: Buffer.from('binary/null') } }).finish()));
    // An encrypted payload whose bytes come from the other realm opens too.
    const foreign = { metadata: sealed!.metadata, data: inSandbox(Buffer.from(sealed!.data!).toString('latin1'), 0) };
    expect(foreign.data instanceof Uint8Array).toBe(false);
    const [opened] = await codec.decode([foreign]);
    expect(str(opened!.data)).toBe('"a secret from the sandbox"');
    expect(meta(opened!)).toEqual({ encoding: 'json/plain' });
    // Bytes are required in any realm: data that is not a Uint8Array is refused, not serialized.
    await expect(codec.encode([{ metadata: {}, data: [1, 2, 3] as unknown as Uint8Array }])).rejects.toThrow(new TypeError('payload.data must be a Uint8Array'));
  });

  it('control: without the codec the same value is plaintext on the wire', async () => {
    const [payload] = (await encodeToPayloads(loadDataConverter({}), { note: SECRET }))!;
    expect(Buffer.from(proto.temporal.api.common.v1.Payload.encode(payload!).finish()).includes(SECRET)).toBe(true);
  });

  it('rotation: the newest key encodes, every key in the ring decodes, and the ring grows at run time', async () => {
    const a = makeTsk().tsk;
    const b = makeTsk().tsk;
    const ring = createTskKeyRing([a]);
    const codec = createTskPayloadCodec({ keys: ring });
    const converter = loadDataConverter({ payloadCodecs: [codec] });
    const [old] = (await encodeToPayloads(converter, 'sealed with a'))!;
    ring.add(b);
    const [fresh] = (await encodeToPayloads(converter, 'sealed with b'))!;
    expect(meta(old!)['encryption-key-id']).toBe(a.metadata.keyId);
    expect(meta(fresh!)['encryption-key-id']).toBe(b.metadata.keyId);
    expect(await decodeFromPayloadsAtIndex(converter, 0, [old!])).toBe('sealed with a');
    expect(await decodeFromPayloadsAtIndex(converter, 0, [fresh!])).toBe('sealed with b');
    // An array of keys: the last encodes; encodeKeyId names another.
    const [named] = await createTskPayloadCodec({ keys: [a, b], encodeKeyId: a.metadata.keyId }).encode([defaultPayloadConverter.toPayload('x')]);
    expect(meta(named!)['encryption-key-id']).toBe(a.metadata.keyId);
    const [last] = await createTskPayloadCodec({ keys: [a, b] }).encode([defaultPayloadConverter.toPayload('x')]);
    expect(meta(last!)['encryption-key-id']).toBe(b.metadata.keyId);
  });

  it('a payload sealed with a key the codec does not hold fails with ERR_CODEC_UNKNOWN_KEY naming that key id and how to load it', async () => {
    const a = makeTsk().tsk;
    const b = makeTsk();
    const [sealed] = await createTskPayloadCodec({ keys: a }).encode([defaultPayloadConverter.toPayload(SECRET)]);
    const err = await codecError(createTskPayloadCodec({ keys: b.tsk }).decode([sealed!]));
    expect(err.code).toBe('ERR_CODEC_UNKNOWN_KEY');
    expect(err.message).toContain(`needs Trusted Session Key ${a.metadata.keyId}`);
    expect(err.message).toContain(`it holds ${b.tsk.metadata.keyId}`);
    expect(err.message).toContain('ring.add(tsk)');
    // encoding with a named key that is not (yet) in the ring is the same error
    const ring = createTskKeyRing([b.tsk]);
    const err2 = await codecError(createTskPayloadCodec({ keys: ring, encodeKeyId: a.metadata.keyId }).encode([defaultPayloadConverter.toPayload('x')]));
    expect(err2.code).toBe('ERR_CODEC_UNKNOWN_KEY');
    ring.add(a);
    await expect(createTskPayloadCodec({ keys: ring, encodeKeyId: a.metadata.keyId }).encode([defaultPayloadConverter.toPayload('x')])).resolves.toHaveLength(1);
  });

  it('unencrypted payloads pass through by default and are refused with rejectUnencrypted', async () => {
    const { tsk } = makeTsk();
    const plain = defaultPayloadConverter.toPayload({ legacy: true });
    expect(await createTskPayloadCodec({ keys: tsk }).decode([plain])).toEqual([plain]);
    const err = await codecError(createTskPayloadCodec({ keys: tsk, rejectUnencrypted: true }).decode([plain]));
    expect(err.code).toBe('ERR_CODEC_UNENCRYPTED');
    expect(err.message).toContain('"json/plain"');
    expect(err.message).not.toContain('legacy');
  });

  describe('the host (or anyone with write access to history) tampering with a payload', () => {
    const a = makeTsk();
    const b = makeTsk();
    const codec = createTskPayloadCodec({ keys: [a.tsk, b.tsk] });
    const seal = async () => (await createTskPayloadCodec({ keys: a.tsk }).encode([defaultPayloadConverter.toPayload(SECRET)]))[0]!;
    const cases: Array<[string, (p: Payload) => Payload, string]> = [
      ['a flipped ciphertext bit', (p) => ({ ...p, data: Buffer.from(p.data!).map((x, i) => (i === 40 ? x ^ 1 : x)) }), 'ERR_CODEC_DECRYPT_FAILED'],
      ['the key id switched to another key the codec holds', (p) => ({ ...p, metadata: { ...p.metadata, 'encryption-key-id': Buffer.from(b.tsk.metadata.keyId) } }), 'ERR_CODEC_DECRYPT_FAILED'],
      ['a truncated envelope', (p) => ({ ...p, data: p.data!.subarray(0, 20) }), 'ERR_CODEC_MALFORMED'],
      ['the tag cut off', (p) => ({ ...p, data: p.data!.subarray(0, p.data!.length - 1) }), 'ERR_CODEC_DECRYPT_FAILED'],
      ['no key id', (p) => ({ ...p, metadata: { encoding: p.metadata!.encoding!, 'encryption-cipher': p.metadata!['encryption-cipher']! } }), 'ERR_CODEC_MALFORMED'],
      ['a foreign cipher tag', (p) => ({ ...p, metadata: { ...p.metadata, 'encryption-cipher': Buffer.from('AES-256-GCM') } }), 'ERR_CODEC_MALFORMED'],
      // Only the exact tag the codec writes (issue 18 §4): these all named version 2 or passed the old /^tsk-v([0-9]{1,3})$/.
      ['the cipher tag tsk-v02', (p) => ({ ...p, metadata: { ...p.metadata, 'encryption-cipher': Buffer.from('tsk-v02') } }), 'ERR_CODEC_MALFORMED'],
      ['the cipher tag tsk-v002', (p) => ({ ...p, metadata: { ...p.metadata, 'encryption-cipher': Buffer.from('tsk-v002') } }), 'ERR_CODEC_MALFORMED'],
      ['the cipher tag TSK-V2', (p) => ({ ...p, metadata: { ...p.metadata, 'encryption-cipher': Buffer.from('TSK-V2') } }), 'ERR_CODEC_MALFORMED'],
      ['the cipher tag tsk-v2 and a NUL', (p) => ({ ...p, metadata: { ...p.metadata, 'encryption-cipher': Buffer.from('tsk-v2\0') } }), 'ERR_CODEC_MALFORMED'],
      ['the cipher tag tsk-v1 on a v1-looking envelope', (p) => ({ metadata: { ...p.metadata, 'encryption-cipher': Buffer.from('tsk-v1') }, data: Uint8Array.from(p.data!).fill(1, 0, 1) }), 'ERR_CODEC_MALFORMED'],
      ['no data', (p) => ({ metadata: p.metadata }), 'ERR_CODEC_MALFORMED'],
    ];
    for (const [name, tamper, code] of cases) {
      it(`${name} → ${code}, with no plaintext or key material in the message`, async () => {
        const err = await codecError(codec.decode([tamper(await seal())]));
        expect(err.code).toBe(code);
        for (const secret of [SECRET, a.raw, b.raw]) for (const f of forms(secret)) expect(err.message).not.toContain(f);
      });
    }

    it('a genuine v1 envelope (as 0.1 would have sealed it, tagged tsk-v1) is ERR_CODEC_MALFORMED: the codec reads only v2', async () => {
      const inner = proto.temporal.api.common.v1.Payload.encode(defaultPayloadConverter.toPayload(SECRET)).finish();
      const nonce = randomBytes(12);
      const header = Buffer.concat([Buffer.from([1]), Buffer.from(a.tsk.metadata.keyId, 'hex'), nonce]);
      const c = createCipheriv('aes-256-gcm', a.raw, nonce);
      c.setAAD(Buffer.concat([header, Buffer.from('nitro-enclave-sdk/temporal/payload')]));
      const v1 = Buffer.concat([header, c.update(inner), c.final(), c.getAuthTag()]);
      const sealed = await seal();
      for (const tag of ['tsk-v1', 'tsk-v2']) {
        const err = await codecError(codec.decode([{ metadata: { ...sealed.metadata, 'encryption-cipher': Buffer.from(tag) }, data: v1 }]));
        expect(err.code).toBe('ERR_CODEC_MALFORMED');
      }
    });

    it('a TSK envelope made for something else (no payload AAD) is refused, so sealed agent state cannot pose as a payload', async () => {
      const inner = proto.temporal.api.common.v1.Payload.encode(defaultPayloadConverter.toPayload(SECRET)).finish();
      const sealed = await seal();
      const forged = { metadata: sealed.metadata, data: a.tsk.encrypt(inner) };
      expect((await codecError(codec.decode([forged]))).code).toBe('ERR_CODEC_DECRYPT_FAILED');
    });
  });

  it('rejects bad options with TypeError', () => {
    const { tsk } = makeTsk();
    expect(() => createTskPayloadCodec({ keys: [] })).toThrow(TypeError);
    expect(() => createTskPayloadCodec({ keys: {} as never })).toThrow(TypeError);
    // Not a look-alike: only a TrustedSessionKey writes the payload domain, so tsk.encrypt cannot stand in for it.
    const lookAlike = { encrypt: tsk.encrypt.bind(tsk), decrypt: tsk.decrypt.bind(tsk), metadata: tsk.metadata };
    expect(() => createTskPayloadCodec({ keys: lookAlike as never })).toThrow(new TypeError('keys must be TrustedSessionKeys (from getTrustedSessionKey, of this copy of nitro-enclave-sdk)'));
    expect(() => createTskPayloadCodec({ keys: tsk, encodeKeyId: 'nope' })).toThrow(TypeError);
    expect(() => createTskPayloadCodec({ keys: tsk, rejectUnencrypted: 'yes' as never })).toThrow(TypeError);
  });
});

describe('the failure converter module (failureConverterPath)', () => {
  it('moves message and stack trace into an encrypted payload; the codec decrypts them back', async () => {
    const { tsk } = makeTsk();
    const codecs = [createTskPayloadCodec({ keys: tsk })];
    const error = new Error(SECRET);
    const failure = failureConverter.errorToFailure(error, defaultPayloadConverter);
    const encoded = await encodeFailure(codecs, failure);
    expect(encoded.message).toBe('Encoded failure');
    expect(encoded.stackTrace).toBe('');
    const wire = Buffer.from(proto.temporal.api.failure.v1.Failure.encode(encoded).finish());
    expect(wire.includes(SECRET)).toBe(false);
    expect(wire.includes('payload-codec.test')).toBe(false); // the stack trace names this file
    const back = failureConverter.failureToError(await decodeFailure(codecs, encoded), defaultPayloadConverter);
    expect(back.message).toBe(SECRET);
    expect(back.stack).toContain('payload-codec.test');
  });

  it('control: Temporal’s default failure converter leaves both in plaintext', async () => {
    const { tsk } = makeTsk();
    const failure = new DefaultFailureConverter().errorToFailure(new Error(SECRET), defaultPayloadConverter);
    const encoded = await encodeFailure([createTskPayloadCodec({ keys: tsk })], failure);
    expect(Buffer.from(proto.temporal.api.failure.v1.Failure.encode(encoded).finish()).includes(SECRET)).toBe(true);
  });
});
