// docs/formats.md is the spec: its constants table must equal the code's constants, and a second
// implementation written from the doc (test/helpers/formats-reference.ts, node:crypto only) must read
// what our code writes and write what our code reads.
import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import proto from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import { CREDENTIALS_REQUEST, FILE_NAME, fileRequest, MAX_ANSWER_BYTES, MAX_REQUEST_BYTES, NOT_FOUND, PARENT_CREDENTIALS_PORT } from '../../src/internal/parent-wire.js';
import { XAES_NONCE_BYTES, XAES_TAG_BYTES } from '../../src/internal/xaes.js';
import { openInDomain, TrustedSessionKey, TSK_ENVELOPE_DOMAINS, TSK_ENVELOPE_VERSION, TSK_KEY_ID_LABEL } from '../../src/kms/trusted-session-key.js';
import { buildInfo, KEY_FORMAT_VERSION, KEY_ID_LENGTH, MESSAGE_ID_LENGTH, MESSAGE_VERSION, MESSAGE_VERSION_UNSTAMPED, suiteByName } from '../../src/seal/format.js';
import { createTskPayloadCodec, ENCRYPTED_ENCODING, METADATA_CIPHER, METADATA_KEY_ID, TSK_CIPHER_TAG } from '../../src/temporal/index.js';
import { createSealedActivityClient, SealedActivityError } from '../../src/workflow/parent/client.js';
import { DEFAULT_MAX_MESSAGE_BYTES, FRAME, FRAME_HEADER_BYTES } from '../../src/workflow/protocol.js';
import { CHAIN_ID_BYTES, encodeBinding, MAX_BINDING_FIELD_BYTES, newChainId, openState, peekStateBinding, SEALED_STATE_FORMAT, sealState } from '../../src/workflow/index.js';
import { forgeXaesOpen } from '../helpers/forge-xaes.js';
import { docConstants, keyIdBySpec, openEnvelopeBySpec, openPayloadBySpec, openSealedStateBySpec, sealEnvelopeBySpec, sealStateBySpec } from '../helpers/formats-reference.js';
import { verifyAttestationDocument } from '../../src/attestation/index.js';
import { serveParentCredentials } from '../../src/parent/credentials-server.js';
import { simulatedReceiver } from '../helpers/seal.js';
import { serve, tempDir } from '../workflow/helpers.js';
import { sealToEnclave } from '../../src/seal/index.js';
// The example imports the built package (by self-reference), so its key must come from there too.
import { TrustedSessionKey as BuiltTrustedSessionKey } from 'nitro-enclave-sdk/kms';
// @ts-expect-error: plain ESM example without type declarations
import * as gatewayWire from '../../examples/browser-gateway/wire.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { createBrowserService } from '../../examples/browser-gateway/enclave/service.mjs';

const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'formats.md'), 'utf8');
const meta = { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/tsk', pcr0: 'aa'.repeat(48), moduleId: 'i-0-enc0', obtainedAt: new Date(0) };
const enc = (s: string) => new TextEncoder().encode(s);
const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
};

/** The shortest envelope of `version` that `decrypt` does not call malformed, minus the tag: the header length. */
function headerLengthOf(tsk: TrustedSessionKey, version: number): number {
  for (let n = 1; n < 100; n++) {
    const bytes = new Uint8Array(n);
    bytes[0] = version;
    if (codeOf(() => tsk.decrypt(bytes)) !== 'ERR_TSK_MALFORMED') return n - XAES_TAG_BYTES;
  }
  throw new Error('no length accepted');
}

/** The sealed handler-error details' activity name, read from a real server's ERROR frame. */
async function errorActivity(): Promise<string> {
  const tsk = new TrustedSessionKey(randomBytes(32), meta);
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'agents.sock');
  const { server } = serve(path, tsk);
  const client = createSealedActivityClient({ address: { family: 'unix', path } });
  try {
    const state = sealState(tsk, enc('x'), { workflowId: 'wf', chainId: newChainId(), activity: 'boom', seq: 0, producer: 'client' });
    const err = await client.call({ activity: 'boom', workflowId: 'wf', seq: 0, state }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SealedActivityError);
    return peekStateBinding((err as SealedActivityError).details!).activity;
  } finally {
    await client.close();
    await server.close();
    cleanup();
  }
}

describe('docs/formats.md constants', () => {
  const tsk = new TrustedSessionKey(randomBytes(32), meta);

  it('every constant the doc states is the code’s, and every constant of the code is in the doc', async () => {
    const suites = /one of (.*)$/.exec(codeOf(() => suiteByName('?')))![1]!.split(', ');
    expect(suites.length).toBeGreaterThanOrEqual(2);
    const code: Record<string, unknown> = {
      'tsk.keyIdLabel': TSK_KEY_ID_LABEL,
      'tsk.keyIdBytes': tsk.metadata.keyId.length / 2,
      'tsk.envelopeVersion': TSK_ENVELOPE_VERSION,
      'tsk.v2HeaderBytes': headerLengthOf(tsk, 2),
      'tsk.v1HeaderBytes': headerLengthOf(tsk, 1),
      'tsk.tagBytes': XAES_TAG_BYTES,
      ...Object.fromEntries(Object.entries(TSK_ENVELOPE_DOMAINS).map(([k, v]) => [`tsk.domain.${k}`, v])),
      'sealedState.format': SEALED_STATE_FORMAT,
      'sealedState.chainIdBytes': CHAIN_ID_BYTES,
      'sealedState.maxFieldBytes': MAX_BINDING_FIELD_BYTES,
      'sealedState.errorActivity': await errorActivity(),
      'frame.headerBytes': FRAME_HEADER_BYTES,
      ...Object.fromEntries(Object.entries(FRAME).map(([k, v]) => [`frame.type.${k}`, v])),
      'frame.defaultMaxMessageBytes': DEFAULT_MAX_MESSAGE_BYTES,
      'seal.keyFormatVersion': KEY_FORMAT_VERSION,
      'seal.messageVersion': MESSAGE_VERSION,
      'seal.unstampedMessageVersion': MESSAGE_VERSION_UNSTAMPED,
      'seal.messageIdBytes': MESSAGE_ID_LENGTH,
      'seal.keyIdBytes': KEY_ID_LENGTH,
      'seal.infoLabel': new TextDecoder().decode(buildInfo(new Uint8Array(0), new Uint8Array(0))),
      ...Object.fromEntries(suites.map((name) => [`seal.suite.${name}`, [suiteByName(name).kemId, suiteByName(name).kdfId, suiteByName(name).aeadId]])),
      'browser.requestInfo': gatewayWire.REQUEST_INFO,
      'browser.responseInfoLabel': gatewayWire.RESPONSE_INFO_LABEL,
      'browser.responseVersion': gatewayWire.RESPONSE_VERSION,
      'browser.plaintextVersion': gatewayWire.PLAINTEXT_VERSION,
      'browser.workflowIdPrefix': gatewayWire.WORKFLOW_ID_PREFIX,
      'codec.encoding': ENCRYPTED_ENCODING,
      'codec.metadataKeyId': METADATA_KEY_ID,
      'codec.metadataCipher': METADATA_CIPHER,
      'codec.cipherTag': TSK_CIPHER_TAG,
      'parent.port': PARENT_CREDENTIALS_PORT,
      'parent.credentialsRequest': CREDENTIALS_REQUEST,
      'parent.fileRequest': fileRequest(''),
      'parent.fileName': FILE_NAME.source,
      'parent.maxRequestBytes': MAX_REQUEST_BYTES,
      'parent.maxAnswerBytes': MAX_ANSWER_BYTES,
      'parent.notFound': NOT_FOUND,
    };
    const stated = docConstants(doc);
    expect(Object.fromEntries(stated)).toEqual(code);
    expect(1 + 8 + XAES_NONCE_BYTES).toBe(stated.get('tsk.v2HeaderBytes'));
  });

  it('the doc’s binding example is encodeBinding’s output, byte for byte', () => {
    const m = /Example: `(\{[^`]+\})` encodes as\s*`([0-9a-f ]+)`/.exec(doc);
    expect(m).not.toBeNull();
    const example = JSON.parse(m![1]!.replace(/(\w+):/g, '"$1":')) as Parameters<typeof encodeBinding>[0];
    expect(Buffer.from(encodeBinding(example)).toString('hex')).toBe(m![2]!.replace(/ /g, ''));
  });

  it('the doc states each domain label once, and the labels differ', () => {
    const labels = Object.values(TSK_ENVELOPE_DOMAINS);
    expect(new Set(labels).size).toBe(labels.length);
    for (const label of labels) expect(doc).toContain(`| \`${label}\` |`);
  });

  it('every label string the doc states (TSK domains, seal, browser gateway) is distinct, and none is a prefix of another', () => {
    const labels = [...docConstants(doc)].filter(([name, v]) => typeof v === 'string' && /(Label|label|Info|domain\.)/.test(name)).map(([, v]) => (v as string).replace(/\0$/, ''));
    expect(labels).toEqual(expect.arrayContaining(['nitro-enclave-sdk/seal v1', gatewayWire.REQUEST_INFO, gatewayWire.RESPONSE_INFO_LABEL, ...Object.values(TSK_ENVELOPE_DOMAINS)]));
    for (const a of labels) for (const b of labels) if (a !== b) expect(b.startsWith(a), `${b} starts with ${a}`).toBe(false);
  });
});

describe('the doc’s test vectors', () => {
  const block = /<!-- vectors:begin -->\s*```\n([\s\S]*?)```\s*<!-- vectors:end -->/.exec(doc)![1]!;
  const v = Object.fromEntries(block.trim().split('\n').map((line) => line.trim().split(/\s+/) as [string, string]));
  const hex = (name: string) => Buffer.from(v[name]!, 'hex');
  const key = hex('key');
  const nonce = hex('nonce');
  const binding = { workflowId: 'wf', chainId: '00112233445566778899aabbccddeeff', activity: 'a', seq: 1, producer: 'p' };
  const label = (l: string) => Buffer.concat([Buffer.from([0, l.length]), Buffer.from(l)]);

  it('are what the spec’s implementation writes', () => {
    expect(keyIdBySpec(key)).toEqual(hex('keyId'));
    expect(sealEnvelopeBySpec(key, nonce, 'encrypt', enc('hello'), enc('agent-7'))).toEqual(hex('envelope.encrypt'));
    expect(sealEnvelopeBySpec(key, nonce, 'temporalPayload', enc('hello'))).toEqual(hex('envelope.payload'));
    expect(sealStateBySpec(key, nonce, binding, enc('hello'))).toEqual(hex('sealedState'));
  });

  it('open in our code', () => {
    const tsk = new TrustedSessionKey(Uint8Array.from(key), meta);
    expect(tsk.metadata.keyId).toBe(v.keyId);
    expect(new TextDecoder().decode(tsk.decrypt(hex('envelope.encrypt'), enc('agent-7')))).toBe('hello');
    expect(new TextDecoder().decode(openInDomain(tsk, 'temporalPayload', hex('envelope.payload'), undefined))).toBe('hello');
    const opened = openState(tsk, hex('sealedState'), { ...binding });
    expect(new TextDecoder().decode(opened.plaintext)).toBe('hello');
    expect(opened.binding).toEqual(binding);
  });

  it('open in an independent XAES-256-GCM (node-forge), with the AAD spelled out from the doc', () => {
    const e = hex('envelope.encrypt');
    expect(Buffer.from(forgeXaesOpen(key, nonce, e.subarray(33), Buffer.concat([e.subarray(0, 33), label('nitro-enclave-sdk/tsk/encrypt'), enc('agent-7')]))!).toString()).toBe('hello');
    const p = hex('envelope.payload');
    expect(Buffer.from(forgeXaesOpen(key, nonce, p.subarray(33), Buffer.concat([p.subarray(0, 33), label('nitro-enclave-sdk/temporal/payload')]))!).toString()).toBe('hello');
    const s = hex('sealedState');
    const prefix = s.subarray(0, 3 + s.readUInt16BE(1));
    const env = s.subarray(prefix.length);
    expect(prefix.subarray(3)).toEqual(Buffer.from(encodeBinding(binding)));
    expect(Buffer.from(forgeXaesOpen(key, nonce, env.subarray(33), Buffer.concat([env.subarray(0, 33), label('nitro-enclave-sdk/workflow/sealed-state'), prefix]))!).toString()).toBe('hello');
  });
});

describe('an implementation written from docs/formats.md (node:crypto only) and ours agree', () => {
  const raw = randomBytes(32);
  const tsk = new TrustedSessionKey(Uint8Array.from(raw), meta);

  it('key id', () => {
    expect(keyIdBySpec(raw).toString('hex')).toBe(tsk.metadata.keyId);
  });

  it('TSK envelope v2 (encrypt domain), both ways, with and without AAD', () => {
    for (const aad of [new Uint8Array(0), enc('agent-7'), randomBytes(100)]) {
      const pt = randomBytes(77);
      const ours = tsk.encrypt(pt, aad);
      expect(openEnvelopeBySpec(raw, ours, 'encrypt', aad)?.equals(pt)).toBe(true);
      expect(openEnvelopeBySpec(raw, ours, 'sealedState', aad)).toBeNull();
      const theirs = sealEnvelopeBySpec(raw, randomBytes(24), 'encrypt', pt, aad);
      expect(Buffer.from(tsk.decrypt(theirs, aad)).equals(pt)).toBe(true);
    }
  });

  it('TSK envelope v1: ours opens what the spec describes', () => {
    const nonce = randomBytes(12);
    const header = Buffer.concat([Buffer.from([1]), keyIdBySpec(raw), nonce]);
    const c = createCipheriv('aes-256-gcm', raw, nonce);
    c.setAAD(Buffer.concat([header, enc('old')]));
    const v1 = Buffer.concat([header, c.update(enc('from 0.1')), c.final(), c.getAuthTag()]);
    expect(new TextDecoder().decode(tsk.decrypt(v1, enc('old')))).toBe('from 0.1');
    expect(openEnvelopeBySpec(raw, v1, null, enc('old'))?.toString()).toBe('from 0.1');
  });

  it('sealed state, both ways, binding and chain id included', () => {
    const binding = { workflowId: 'commande-été-🚀', chainId: newChainId(), activity: 'анализ', seq: 2 ** 40 + 3, producer: '研究' };
    const ours = sealState(tsk, enc('state'), binding);
    const opened = openSealedStateBySpec(raw, ours);
    expect(opened?.binding).toEqual(binding);
    expect(opened?.plaintext.toString()).toBe('state');
    const theirs = sealStateBySpec(raw, randomBytes(24), binding, enc('from elsewhere'));
    expect(new TextDecoder().decode(openState(tsk, theirs, { ...binding }).plaintext)).toBe('from elsewhere');
  });

  it('Temporal payload, both ways', async () => {
    const codec = createTskPayloadCodec({ keys: tsk });
    const payload = defaultPayloadConverter.toPayload({ secret: 42 });
    const [sealed] = await codec.encode([payload]);
    const inner = openPayloadBySpec(raw, sealed!);
    const P = proto.temporal.api.common.v1.Payload;
    expect(P.toObject(P.decode(inner!), { bytes: String })).toEqual(P.toObject(P.decode(P.encode(payload).finish()), { bytes: String }));
    const data = sealEnvelopeBySpec(raw, randomBytes(24), 'temporalPayload', P.encode(payload).finish());
    const theirs = { metadata: { encoding: enc('binary/encrypted'), 'encryption-key-id': enc(keyIdBySpec(raw).toString('hex')), 'encryption-cipher': enc('tsk-v2') }, data };
    expect(defaultPayloadConverter.fromPayload((await codec.decode([theirs]))[0]!)).toEqual({ secret: 42 });
  });
});

/** Everything a stream peer sends until it closes. */
function exchange(path: string, request: Uint8Array, until: (received: Buffer) => boolean = () => false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (until(Buffer.concat(chunks))) socket.destroy();
    });
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
    socket.write(request);
  });
}

describe('a client written from docs/formats.md talks to our servers', () => {
  const c = docConstants(doc);
  const n = (name: string) => c.get(name) as number;
  const s = (name: string) => c.get(name) as string;

  it('activity frames: a hand-built CALL with a spec-sealed state, a RESULT decoded and opened by the spec', async () => {
    const raw = randomBytes(32);
    const tsk = new TrustedSessionKey(Uint8Array.from(raw), meta);
    const { dir, cleanup } = tempDir();
    const path = join(dir, 'agents.sock');
    const { server } = serve(path, tsk);
    try {
      const chainId = randomBytes(16).toString('hex');
      const state = sealStateBySpec(raw, randomBytes(24), { workflowId: 'wf-spec', chainId, activity: 'research', seq: 0, producer: 'client' }, enc('reefs'));
      const str16 = (v: string) => {
        const b = Buffer.from(v, 'utf8');
        return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
      };
      const body = Buffer.concat([Buffer.from([0]), str16('research'), str16('wf-spec'), Buffer.alloc(8), Buffer.from([0, 0]), state]);
      const head = Buffer.alloc(n('frame.headerBytes'));
      head.writeUInt32BE(5 + body.length, 0);
      head[4] = n('frame.type.CALL');
      head.writeUInt32BE(77, 5);
      const complete = (b: Buffer) => b.length >= 4 && b.length >= 4 + b.readUInt32BE(0);
      const answer = await exchange(path, Buffer.concat([head, body]), complete);
      expect(answer[4]).toBe(n('frame.type.RESULT'));
      expect(answer.readUInt32BE(5)).toBe(77);
      const result = answer.subarray(n('frame.headerBytes'), 4 + answer.readUInt32BE(0));
      const docLength = result.readUInt32BE(0);
      expect(docLength).toBe(0);
      const opened = openSealedStateBySpec(raw, result.subarray(4 + docLength));
      expect(opened?.binding).toEqual({ workflowId: 'wf-spec', chainId, activity: 'analysis', seq: 1, producer: 'research' });
      expect(opened?.plaintext.toString()).toBe('notes on reefs');
    } finally {
      await server.close();
      cleanup();
    }
  });

  it('HPKE seal: a version 2 message framed by the spec (with @hpke/core) opens in our receiver with replay protection on', async () => {
    const { receiver, trustAnchors, enclave } = await simulatedReceiver({}, { replayWindowMs: 60_000 });
    const nonce = randomBytes(32);
    const verified = await verifyAttestationDocument(await receiver.attest(nonce), { trustAnchors, nonce, expectedPcrs: { 0: enclave.imageSha384 } });
    const attestedKey = Buffer.from(verified.publicKey!);
    expect(attestedKey[0]).toBe(n('seal.keyFormatVersion'));
    const [kem, kdf, aead] = c.get('seal.suite.P256-SHA256-AES256GCM') as number[];
    expect([attestedKey.readUInt16BE(1), attestedKey.readUInt16BE(3), attestedKey.readUInt16BE(5)]).toEqual([kem, kdf, aead]);
    const keyHash = createHash('sha256').update(attestedKey).digest();
    const suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
    const recipientPublicKey = await suite.kem.deserializePublicKey(new Uint8Array(attestedKey.subarray(7)).buffer);
    const appInfo = enc('agent:planner');
    const sender = await suite.createSenderContext({ recipientPublicKey, info: Buffer.concat([Buffer.from(s('seal.infoLabel'), 'utf8'), keyHash, appInfo]) });
    const sealedAt = Buffer.alloc(8);
    sealedAt.writeBigUInt64BE(BigInt(Date.now()));
    const header = Buffer.concat([Buffer.from([n('seal.messageVersion'), kem! >> 8, kem! & 0xff, kdf! >> 8, kdf! & 0xff, aead! >> 8, aead! & 0xff]), keyHash.subarray(0, n('seal.keyIdBytes')), sealedAt, randomBytes(n('seal.messageIdBytes')), Buffer.from(sender.enc)]);
    const ciphertext = Buffer.from(await sender.seal(enc('my API key'), header));
    const message = new Uint8Array(Buffer.concat([header, ciphertext]));
    const plaintext = await receiver.open(message, { info: appInfo });
    expect(new TextDecoder().decode(plaintext)).toBe('my API key');
    // The id the doc places at offset 23 is the one the receiver remembers.
    await expect(receiver.open(message, { info: appInfo })).rejects.toMatchObject({ code: 'ERR_SEAL_REPLAYED' });
  });

  it('browser gateway: a request written from the doc goes through intake; a report state sealed by the spec comes out of deliver as a response the spec opens; a spec-made response opens in the page', async () => {
    const raw = randomBytes(32);
    const tsk = new BuiltTrustedSessionKey(Uint8Array.from(raw), meta);
    const { receiver, trustAnchors, enclave } = await simulatedReceiver({}, { replayWindowMs: 60_000 });
    const service = createBrowserService({ tsk, receiver });
    const suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
    const browserKeys = await suite.kem.generateKeyPair();
    const responseKey = Buffer.from(await suite.kem.serializePublicKey(browserKeys.publicKey));
    const requestId = randomBytes(16).toString('hex');
    const workflowId = `${s('browser.workflowIdPrefix')}${requestId}`;
    const plaintext = enc(JSON.stringify({ v: n('browser.plaintextVersion'), requestId, responseKey: responseKey.toString('base64url'), question: 'q?', sources: ['s1'] }));
    const nonce = randomBytes(32);
    const sealedRequest = await sealToEnclave(await receiver.attest(nonce), plaintext, { expected: { pcrs: { 0: enclave.imageSha384 }, nonce }, trustAnchors, info: enc(s('browser.requestInfo')) });
    const first = openSealedStateBySpec(raw, await service.intake(workflowId, sealedRequest))!;
    expect(first.binding).toMatchObject({ workflowId, activity: 'research', seq: 1, producer: 'intake' });
    const carried = JSON.parse(first.plaintext.toString('utf8'));
    expect(carried).toEqual({
      reply: { requestId, chainId: first.binding.chainId, responseKey: responseKey.toString('base64url'), requestHash: createHash('sha256').update(sealedRequest).digest('base64url') },
      data: { question: 'q?', sources: ['s1'] },
    });
    const report = { title: 'T', verdict: 'V', confidence: 0.5, citations: ['[1] s1'] };
    const last = sealStateBySpec(raw, randomBytes(24), { workflowId, chainId: first.binding.chainId, activity: 'deliver', seq: 4, producer: 'report' }, enc(JSON.stringify({ reply: carried.reply, data: report })));
    const response = Buffer.from(await service.deliver(workflowId, last));
    expect(response[0]).toBe(n('browser.responseVersion'));
    const info = Buffer.concat([Buffer.from(s('browser.responseInfoLabel')), Buffer.from([0]), createHash('sha256').update(sealedRequest).digest()]);
    const recipient = await suite.createRecipientContext({ recipientKey: browserKeys, enc: new Uint8Array(response.subarray(1, 66)).buffer, info });
    const opened = JSON.parse(Buffer.from(await recipient.open(new Uint8Array(response.subarray(66)).buffer, new Uint8Array(response.subarray(0, 66)).buffer)).toString('utf8'));
    expect(opened).toEqual({ v: 1, requestId, chainId: first.binding.chainId, report });

    // The other way: a response framed by the spec opens in the page's code (with a WebCrypto key pair, as the page makes).
    const pageKeys = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits'])) as import('node:crypto').webcrypto.CryptoKeyPair;
    const pagePublic = await suite.kem.deserializePublicKey(await crypto.subtle.exportKey('raw', pageKeys.publicKey));
    const sender = await suite.createSenderContext({ recipientPublicKey: pagePublic, info });
    const header = Buffer.concat([Buffer.from([n('browser.responseVersion')]), Buffer.from(sender.enc)]);
    const ciphertext = Buffer.from(await sender.seal(enc(JSON.stringify({ v: 1, requestId, chainId: 'c', report })), header));
    const framed = new Uint8Array(Buffer.concat([header, ciphertext]));
    expect(await gatewayWire.openResponse(framed, { keyPair: pageKeys, sealedRequest, requestId })).toEqual({ chainId: 'c', report });
    await expect(gatewayWire.openResponse(framed, { keyPair: pageKeys, sealedRequest: Uint8Array.from(sealedRequest).reverse(), requestId })).rejects.toMatchObject({ code: 'E_GATEWAY_FORMAT' });
  });

  it('parent credentials and files: request lines and JSON answers as the doc says', async () => {
    const { dir, cleanup } = tempDir();
    const path = join(dir, 'parent.sock');
    const role = async () => ({ accessKeyId: 'ASIAEXAMPLE', secretAccessKey: 'secret', sessionToken: 'token', expiration: new Date('2030-01-01T00:00:00Z') });
    const server = await serveParentCredentials({ address: { family: 'unix', path }, allowPeer: () => true, credentials: role, files: { tsk: new Uint8Array([1, 2, 3]) } });
    try {
      const ask = async (line: string) => JSON.parse((await exchange(path, enc(`${line}\n`))).toString('utf8')) as unknown;
      expect(await ask(s('parent.credentialsRequest'))).toEqual({ AccessKeyId: 'ASIAEXAMPLE', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: '2030-01-01T00:00:00.000Z' });
      expect(await ask(`${s('parent.fileRequest')}tsk`)).toEqual({ Name: 'tsk', Data: 'AQID' });
      expect(await ask(`${s('parent.fileRequest')}other`)).toEqual({ Error: s('parent.notFound') });
      expect(await ask('HELLO')).toEqual({ Error: s('parent.notFound') });
    } finally {
      server.close();
      cleanup();
    }
  });
});
