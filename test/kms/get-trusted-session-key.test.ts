import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearTrustedSessionKeyCache, getTrustedSessionKey, prepareTrustedSessionKey, TrustedSessionKey, type GetTrustedSessionKeyOptions } from '../../src/kms/index.js';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { buildRecipientEnvelope, createSimulatedEnclave, createSimulatedNsm, startKmsSimulator, startVsockProxyStandIn, type KmsSimulator, type ProxyStandIn } from '../../src/testing/index.js';
import { connectSocket } from '../../src/vsock/index.js';
import { createStreamHttpsAgent } from '../../src/vsock/agent.js';
import { answerForKey, client, gate, interceptedClient, rsaPair, untilAborted, type Intercept, knownDataKey } from '../helpers/kms.js';

const enclave = createSimulatedEnclave();
const tmp = mkdtempSync(join(tmpdir(), 'nes-tsk-'));
const proxyPath = join(tmp, 'vsock-proxy.sock');
let sim: KmsSimulator;
let proxy: ProxyStandIn;
let tskPlaintext: Uint8Array;
let blob: Uint8Array;
let keyArn: string;
let aliasArn: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  proxy = await startVsockProxyStandIn({ listen: { path: proxyPath }, target: { port: sim.port } });
  const admin = client(sim, sim.principal('user/admin'));
  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  // Let the role read the policy too, so AccessDenied diagnostics can name the failing condition.
  policy.Statement.push({ Sid: 'Let the enclave role read the policy', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${sim.accountId}:role/EnclaveInstanceRole` }, Action: 'kms:GetKeyPolicy', Resource: '*' });
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }));
  keyArn = KeyMetadata!.Arn!;
  aliasArn = `arn:aws:kms:us-east-1:${sim.accountId}:alias/confidential-workflow-tsk`;
  await admin.send(new CreateAliasCommand({ AliasName: 'alias/confidential-workflow-tsk', TargetKeyId: KeyMetadata!.KeyId }));
  // The test learns the plaintext only to check what the enclave receives (attested: the policy denies GenerateDataKey otherwise).
  const dk = await knownDataKey(admin, enclave, { KeyId: 'alias/confidential-workflow-tsk', EncryptionContext: { app: 'agents' } });
  tskPlaintext = dk.Plaintext!;
  blob = dk.CiphertextBlob!;
});
afterAll(async () => {
  await proxy.close();
  await sim.close();
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  clearTrustedSessionKeyCache();
  sim.faults.clear();
});

/** Production-shaped options: role credentials, the native relay to the proxy stand-in (vsock's code path), TLS to kms.<region>. */
function options(overrides: Partial<GetTrustedSessionKeyOptions> = {}, e = enclave): GetTrustedSessionKeyOptions {
  const role = sim.principal('EnclaveInstanceRole');
  return {
    ciphertextBlob: blob,
    keyId: aliasArn,
    encryptionContext: { app: 'agents' },
    region: 'us-east-1',
    credentials: { accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken! },
    transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: proxyPath }) },
    tlsCa: sim.caPem,
    nsm: createSimulatedNsm(e),
    attestationTrustAnchors: [e.trustAnchor],
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
    ...overrides,
  };
}

const decrypts = () => sim.audit.filter((e) => e.eventName === 'Decrypt').length;

async function codeOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

describe('getTrustedSessionKey against the KMS simulator, through the relay and the vsock-proxy stand-in', () => {
  it('releases the TSK to the right enclave, attested, over TLS to kms.us-east-1.amazonaws.com', async () => {
    const before = proxy.connections;
    const tsk = await getTrustedSessionKey(options());
    expect(tsk).toBeInstanceOf(TrustedSessionKey);
    expect(tsk.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(tsk.metadata).toMatchObject({ keyArn, pcr0: enclave.imageSha384, moduleId: enclave.moduleId });
    expect(proxy.connections).toBeGreaterThan(before);
    const event = sim.audit.filter((e) => e.eventName === 'Decrypt').at(-1)!;
    expect(event.additionalEventData?.recipient.attestationDocumentEnclaveImageDigest).toBe(enclave.imageSha384);
    expect(event.errorCode).toBeUndefined();
    const timings = tsk.metadata.timings!;
    expect(timings.attempts).toBe(1);
    expect(timings.kmsMs).toBeGreaterThan(0);
    expect(timings.verifyMs).toBeGreaterThan(0);
    tsk.dispose();
  });

  it('accepts the blob as base64 text and as a file path', async () => {
    const path = join(tmp, 'tsk.bin');
    writeFileSync(path, blob);
    for (const o of [{ ciphertextBlob: Buffer.from(blob).toString('base64') }, { ciphertextBlob: undefined, ciphertextBlobPath: path }]) {
      const tsk = await getTrustedSessionKey(options(o));
      expect(tsk.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    }
  });

  it('encrypts and decrypts with the versioned AES-256-GCM envelope, and zeroes on dispose', async () => {
    const tsk = await getTrustedSessionKey(options());
    const aad = new TextEncoder().encode('agent-7');
    const sealed = tsk.encrypt(new TextEncoder().encode('hello agents'), aad);
    expect(sealed[0]).toBe(2); // envelope v2 (XAES-256-GCM)
    expect(Buffer.from(sealed.subarray(1, 9)).toString('hex')).toBe(tsk.metadata.keyId);
    expect(new TextDecoder().decode(tsk.decrypt(sealed, aad))).toBe('hello agents');
    expect(() => tsk.decrypt(sealed)).toThrow(expect.objectContaining({ code: 'ERR_TSK_DECRYPT_FAILED' }));
    const tampered = new Uint8Array(sealed);
    tampered[30]! ^= 1;
    expect(() => tsk.decrypt(tampered, aad)).toThrow(expect.objectContaining({ code: 'ERR_TSK_DECRYPT_FAILED' }));
    expect(() => tsk.decrypt(sealed.subarray(0, 20), aad)).toThrow(expect.objectContaining({ code: 'ERR_TSK_MALFORMED' }));
    const other = new TrustedSessionKey(new Uint8Array(32).fill(1), tsk.metadata);
    expect(() => other.decrypt(sealed, aad)).toThrow(expect.objectContaining({ code: 'ERR_TSK_WRONG_KEY' }));
    const keyBytes = tsk.keyObject.export();
    tsk.dispose();
    expect(tsk.disposed).toBe(true);
    expect(() => tsk.encrypt(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'ERR_TSK_DISPOSED' }));
    expect(keyBytes).toHaveLength(32);
  });

  it('denies another image with ERR_KMS_ACCESS_DENIED naming this PCR0 and the condition that failed', async () => {
    const other = createSimulatedEnclave({ pcrs: { 0: 'ab'.repeat(48) }, pki: enclave.pki });
    const count = decrypts();
    const err = await codeOf(getTrustedSessionKey(options({}, other)));
    expect(err.code).toBe('ERR_KMS_ACCESS_DENIED');
    expect(err.message).toContain(`this enclave (PCR0 ${'ab'.repeat(48)})`);
    expect(err.message).toContain(`StringEqualsIgnoreCase kms:RecipientAttestation:ImageSha384 "${enclave.imageSha384}" (request: "${'ab'.repeat(48)}")`);
    expect(decrypts() - count).toBe(1); // AccessDenied is not retried
  });

  it('explains a debug-mode enclave', async () => {
    const debug = createSimulatedEnclave({ debugMode: true, pki: enclave.pki });
    const err = await codeOf(getTrustedSessionKey(options({}, debug)));
    expect(err.code).toBe('ERR_KMS_ACCESS_DENIED');
    expect(err.message).toMatch(/debug mode: its PCRs are all zero, so it can never match a kms:RecipientAttestation:ImageSha384 condition/);
  });

  it('maps invalid ciphertext, a wrong key id, a wrong region and an unreachable proxy to their own codes', async () => {
    expect((await codeOf(getTrustedSessionKey(options({ ciphertextBlob: new Uint8Array(80).fill(7) })))).code).toBe('ERR_KMS_INVALID_CIPHERTEXT');
    expect((await codeOf(getTrustedSessionKey(options({ encryptionContext: { app: 'other' } })))).code).toBe('ERR_KMS_INVALID_CIPHERTEXT');
    expect((await codeOf(getTrustedSessionKey(options({ keyId: aliasArn.replace('confidential-workflow-tsk', 'does-not-exist') })))).code).toBe('ERR_KMS_NOT_FOUND');
    expect((await codeOf(getTrustedSessionKey(options({ keyId: keyArn.replace('us-east-1', 'eu-west-1') })))).code).toBe('ERR_KMS_WRONG_REGION');
    const unreachable = await codeOf(getTrustedSessionKey(options({ transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: join(tmp, 'no-proxy.sock') }) }, retry: { maxAttempts: 2, baseDelayMs: 1 } })));
    expect(unreachable.code).toBe('ERR_VSOCK_CONNECT');
  });

  it('maps a request signed for another region to ERR_KMS_WRONG_REGION', async () => {
    const west = await startKmsSimulator({ region: 'us-west-2', trustAnchors: [enclave.trustAnchor], tlsHostnames: ['kms.us-east-1.amazonaws.com'] });
    try {
      const err = await codeOf(getTrustedSessionKey(options({ transport: { kind: 'tcp', port: west.port }, tlsCa: west.caPem })));
      expect(err.code).toBe('ERR_KMS_WRONG_REGION');
    } finally {
      await west.close();
    }
  });

  it('validates options eagerly with TypeError', async () => {
    await expect(getTrustedSessionKey(options({ region: 'mars' }))).rejects.toThrow(TypeError);
    await expect(getTrustedSessionKey(options({ rsaModulusLength: 1024 as never }))).rejects.toThrow(TypeError);
    await expect(getTrustedSessionKey(options({ ciphertextBlobPath: '/x' }))).rejects.toThrow(/exactly one/);
    await expect(getTrustedSessionKey(options({ ciphertextBlob: 'not base64!' }))).rejects.toThrow(TypeError);
  });

  it('works with 3072- and 4096-bit ephemeral keys and after prepare()', async () => {
    await prepareTrustedSessionKey({ rsaModulusLength: 3072 });
    const a = await getTrustedSessionKey(options({ rsaModulusLength: 3072 }));
    expect(a.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    const b = await getTrustedSessionKey(options({ rsaModulusLength: 4096 }));
    expect(b.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
  });
});

describe('reliability (faults injected in the simulator)', () => {
  it('retries throttling, then succeeds', async () => {
    sim.faults.throttle(2, 'Decrypt');
    const tsk = await getTrustedSessionKey(options());
    expect(tsk.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(tsk.metadata.timings!.attempts).toBe(3);
  });

  it('retries 500s until the deadline and ends in ERR_KMS_TIMEOUT with bounded attempts', async () => {
    sim.faults.internalError(1000, 500, 'Decrypt');
    await prepareTrustedSessionKey(); // the deadline below is about retries, not key generation
    const count = decrypts();
    const err = await codeOf(getTrustedSessionKey(options({ timeoutMs: 1500, retry: { baseDelayMs: 50, maxDelayMs: 100, maxAttempts: 50 } })));
    expect(err.code).toBe('ERR_KMS_TIMEOUT');
    expect(err.message).toMatch(/KMSInternalException/);
    const attempts = decrypts() - count;
    expect(attempts).toBeGreaterThan(1);
    expect(attempts).toBeLessThanOrEqual(50);
  });

  it('gives up after maxAttempts with ERR_KMS_UNAVAILABLE', async () => {
    sim.faults.internalError(1000, 503, 'Decrypt');
    const err = await codeOf(getTrustedSessionKey(options({ retry: { maxAttempts: 3, baseDelayMs: 1 } })));
    expect(err).toMatchObject({ code: 'ERR_KMS_UNAVAILABLE', message: expect.stringContaining('after 3 attempts') });
  });

  it('survives a connection reset mid-response and a truncated body', async () => {
    sim.faults.resetConnection(1, 'Decrypt');
    const afterReset = await getTrustedSessionKey(options());
    expect(afterReset.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(afterReset.metadata.timings!.attempts).toBe(2);
    sim.faults.truncateBody(1, 'Decrypt');
    const afterTruncation = await getTrustedSessionKey(options());
    expect(afterTruncation.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(afterTruncation.metadata.timings!.attempts).toBe(2);
  });

  it('rejects a CMS envelope made for another key with ERR_CMS_DECRYPT_FAILED', async () => {
    const role = sim.principal('EnclaveInstanceRole');
    const kms = new KMSClient({
      region: 'us-east-1',
      credentials: { accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken! },
      requestHandler: new NodeHttpHandler({ httpsAgent: createStreamHttpsAgent({ connect: () => connectSocket({ family: 'unix', path: proxyPath }), servername: sim.hostname, ca: sim.caPem }) }),
      maxAttempts: 1,
    });
    // A man in the middle (or a confused proxy) swaps in an envelope for someone else's key.
    kms.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        (result.output as { CiphertextForRecipient?: Uint8Array }).CiphertextForRecipient = buildRecipientEnvelope(new Uint8Array(32).fill(9), rsaPair().publicKey);
        return result;
      },
      { step: 'initialize', name: 'swapEnvelope' },
    );
    const err = await codeOf(getTrustedSessionKey(options({ kms })));
    expect(err).toMatchObject({ code: 'ERR_CMS_DECRYPT_FAILED', message: 'CMS EnvelopedData could not be decrypted with this private key' });
  });

  it('coalesces 200 concurrent calls into one KMS request, each caller with its own key copy', async () => {
    const count = decrypts();
    const keys = await Promise.all(Array.from({ length: 200 }, () => getTrustedSessionKey(options())));
    expect(decrypts() - count).toBe(1);
    expect(new Set(keys).size).toBe(200);
    keys[0]!.dispose();
    expect(keys[1]!.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
  });

  it('caches for cacheTtlMs when asked', async () => {
    const count = decrypts();
    await getTrustedSessionKey(options({ cacheTtlMs: 60_000 }));
    await getTrustedSessionKey(options({ cacheTtlMs: 60_000 }));
    expect(decrypts() - count).toBe(1);
  });

  it('never shows the key in errors, logs or util.inspect', async () => {
    const hex = Buffer.from(tskPlaintext).toString('hex');
    const b64 = Buffer.from(tskPlaintext).toString('base64');
    const tsk = await getTrustedSessionKey(options());
    const texts = [inspect(tsk, { depth: 10, showHidden: true }), JSON.stringify(tsk), String(tsk), `${tsk}`, inspect({ nested: { tsk } }, { depth: 10 })];
    const other = createSimulatedEnclave({ pcrs: { 0: 'cd'.repeat(48) }, pki: enclave.pki });
    const denied = await codeOf(getTrustedSessionKey(options({}, other)));
    texts.push(denied.message, inspect(denied, { depth: 10 }));
    texts.push(JSON.stringify(sim.audit));
    for (const text of texts) {
      expect(text).not.toContain(hex);
      expect(text).not.toContain(b64);
    }
    expect(inspect(tsk)).toContain('[REDACTED]');
  });
});

/** The enclave role's client through the proxy stand-in, with `intercept` in front of its HTTP requests. */
const roleClient = (intercept: Intercept) => interceptedClient(sim, sim.principal('EnclaveInstanceRole'), intercept, () => connectSocket({ family: 'unix', path: proxyPath }));

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}

describe('the enclave pins its key', () => {
  it('refuses a bare alias, a bare key id or no keyId with a TypeError naming the substitution risk, before anything is sent', async () => {
    const before = { audit: sim.audit.length, connections: proxy.connections };
    const keyIdOnly = keyArn.split('/').at(-1)!;
    for (const keyId of ['alias/confidential-workflow-tsk', keyIdOnly, undefined, `arn:aws:kms:us-east-1:${sim.accountId}:alias/`, `arn:aws:kms:us-east-1:12345:key/${keyIdOnly}`]) {
      await expect(getTrustedSessionKey(options({ keyId: keyId as string }))).rejects.toThrow(TypeError);
    }
    await expect(getTrustedSessionKey(options({ keyId: 'alias/confidential-workflow-tsk' }))).rejects.toThrow(/the parent serves those credentials, so it could make a bare alias name a key of its own account/);
    await expect(getTrustedSessionKey(options({ keyId: keyArn.replace('arn:aws:', 'arn:aws-us-gov:') }))).rejects.toThrow(/belongs to partition aws, not aws-us-gov/);
    await expect(getTrustedSessionKey(options({ keyId: keyArn, region: 'cn-north-1' }))).rejects.toMatchObject({ code: 'ERR_KMS_WRONG_REGION' });
    expect({ audit: sim.audit.length, connections: proxy.connections }).toEqual(before);
  });

  it('accepts the key ARN and the alias ARN, sends the ARN as KeyId, and reports the key ARN', async () => {
    for (const keyId of [keyArn, aliasArn]) {
      const tsk = await getTrustedSessionKey(options({ keyId }));
      expect(tsk.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
      expect(tsk.metadata.keyArn).toBe(keyArn);
      expect(sim.audit.filter((e) => e.eventName === 'Decrypt').at(-1)!.requestParameters.keyId).toBe(keyId);
    }
  });

  it('refuses a KMS answer for another key with ERR_KMS_KEY_MISMATCH and zeroes the released envelope unopened', async () => {
    // Defence in depth: the parent cannot forge a TLS response, but a confused or compromised path in the client could.
    const foreign = keyArn.replace(`:${sim.accountId}:`, ':444455556666:');
    const kms = roleClient((_op, forward) => forward());
    const answer = answerForKey(kms, foreign);
    const err = await codeOf(getTrustedSessionKey(options({ kms })));
    expect(err).toMatchObject({ code: 'ERR_KMS_KEY_MISMATCH', message: `KMS Decrypt answered for key ${foreign}, not the pinned ${aliasArn}; the released key material was zeroed unused` });
    expect(answer.envelope!.length).toBeGreaterThan(100);
    expect(answer.envelope!.every((b) => b === 0)).toBe(true);
    kms.destroy();
  });
});

describe('single flight and cache', () => {
  it('keys on an unambiguous encoding of the encryption context: {"a=b":"c"} and {"a":"b=c"} never share a key', async () => {
    const admin = client(sim, sim.principal('user/admin'));
    const dk = await knownDataKey(admin, enclave, { KeyId: keyArn, EncryptionContext: { 'a=b': 'c' } });
    const right = options({ ciphertextBlob: dk.CiphertextBlob!, encryptionContext: { 'a=b': 'c' } });
    const wrong = options({ ciphertextBlob: dk.CiphertextBlob!, encryptionContext: { a: 'b=c' } });
    const [a, b] = await Promise.allSettled([getTrustedSessionKey(right), getTrustedSessionKey(wrong)]);
    expect(a.status === 'fulfilled' && a.value.keyObject.export()).toEqual(Buffer.from(dk.Plaintext!));
    expect(b.status === 'rejected' && (b.reason as { code: string }).code).toBe('ERR_KMS_INVALID_CIPHERTEXT');
    await getTrustedSessionKey({ ...right, cacheTtlMs: 60_000 });
    await expect(getTrustedSessionKey({ ...wrong, cacheTtlMs: 60_000 })).rejects.toMatchObject({ code: 'ERR_KMS_INVALID_CIPHERTEXT' });
    admin.destroy();
  });

  it('one caller aborting leaves the others their key; the shared request is cancelled when no waiter remains', async () => {
    const seen: AbortSignal[] = [];
    const open = gate();
    const kms = roleClient(async (op, forward, signal) => {
      if (op === 'Decrypt') {
        seen.push(signal!);
        await open.wait(signal);
      }
      return forward();
    });
    const first = new AbortController();
    const count = decrypts();
    const a = getTrustedSessionKey(options({ kms, signal: first.signal }));
    const b = getTrustedSessionKey(options({ kms }));
    await until(() => seen.length === 1);
    first.abort();
    expect((await codeOf(a)).code).toBe('ERR_KMS_ABORTED');
    expect(seen[0]!.aborted).toBe(false); // b still waits on it
    open.open();
    expect((await b).keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(decrypts() - count).toBe(1);

    const hold = gate();
    const stuck = roleClient(async (op, forward, signal) => {
      if (op === 'Decrypt') {
        seen.push(signal!);
        await hold.wait(signal);
      }
      return forward();
    });
    const [c, d] = [new AbortController(), new AbortController()];
    const pc = getTrustedSessionKey(options({ kms: stuck, signal: c.signal }));
    const pd = getTrustedSessionKey(options({ kms: stuck, signal: d.signal }));
    await until(() => seen.length === 2);
    c.abort();
    expect((await codeOf(pc)).code).toBe('ERR_KMS_ABORTED');
    expect(seen[1]!.aborted).toBe(false);
    d.abort();
    expect((await codeOf(pd)).code).toBe('ERR_KMS_ABORTED');
    expect(seen[1]!.aborted).toBe(true); // the last waiter left: the request was cancelled
    kms.destroy();
    stuck.destroy();
  });

  it('each waiter keeps its own deadline: a short-deadline starter times out, a patient caller still gets the key', async () => {
    await prepareTrustedSessionKey();
    const open = gate();
    const kms = roleClient(async (op, forward, signal) => {
      if (op === 'Decrypt') await open.wait(signal);
      return forward();
    });
    const hasty = getTrustedSessionKey(options({ kms, timeoutMs: 300 }));
    const patient = getTrustedSessionKey(options({ kms, timeoutMs: 30_000 }));
    expect((await codeOf(hasty)).code).toBe('ERR_KMS_TIMEOUT');
    open.open();
    expect((await patient).keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    kms.destroy();
  });

  it('zeroes a cached key with an unref\'d timer when cacheTtlMs is up, not on the next call', async () => {
    type Handle = { fn: () => void; ms: number; unref: ReturnType<typeof vi.fn>; cleared: boolean };
    const scheduled: Handle[] = [];
    const timers = {
      setTimeout: (fn: () => void, ms: number) => {
        const h: Handle = { fn, ms, unref: vi.fn(), cleared: false };
        scheduled.push(h);
        return h;
      },
      clearTimeout: (h: unknown) => void ((h as Handle).cleared = true),
    };
    const now = new Date();
    const o = options({ cacheTtlMs: 60_000, timers, clock: () => now });
    const count = decrypts();
    (await getTrustedSessionKey(o)).dispose();
    (await getTrustedSessionKey(o)).dispose();
    expect(decrypts() - count).toBe(1);
    const expiry = scheduled.find((h) => h.ms === 60_000 && !h.cleared);
    expect(expiry).toBeDefined();
    expect(expiry!.unref).toHaveBeenCalled();
    const fill = vi.spyOn(Uint8Array.prototype, 'fill');
    try {
      expiry!.fn(); // the time is up; the (frozen) clock says nothing
      const zeroed = fill.mock.contexts.filter((buf, i) => (buf as Uint8Array).length === 32 && fill.mock.calls[i]![0] === 0) as Uint8Array[];
      expect(zeroed).toHaveLength(1);
      expect(zeroed[0]!.every((x) => x === 0)).toBe(true);
    } finally {
      fill.mockRestore();
    }
    (await getTrustedSessionKey(o)).dispose();
    expect(decrypts() - count).toBe(2);
  });
});

describe('deadlines', () => {
  it('the AccessDenied diagnosis (GetKeyPolicy) stops at the caller\'s deadline', async () => {
    await prepareTrustedSessionKey();
    const other = createSimulatedEnclave({ pcrs: { 0: 'ef'.repeat(48) }, pki: enclave.pki });
    const kms = roleClient((op, forward, signal) => (op === 'GetKeyPolicy' ? untilAborted(signal) : forward()));
    const started = Date.now();
    const err = await codeOf(getTrustedSessionKey(options({ kms, timeoutMs: 1500, keyAudit: false }, other))); // the diagnosis's GetKeyPolicy, not the audit's
    expect(Date.now() - started).toBeLessThan(2900); // the old fixed 3 s budget ran past the deadline
    expect(err.code).toMatch(/ERR_KMS_ACCESS_DENIED|ERR_KMS_TIMEOUT/);
    expect(err.message).toMatch(/AccessDenied/);
    kms.destroy();
  });

  it('the AccessDenied diagnosis (GetKeyPolicy) stops when the caller\'s signal fires', async () => {
    const other = createSimulatedEnclave({ pcrs: { 0: 'ef'.repeat(48) }, pki: enclave.pki });
    const abort = new AbortController();
    let policySignal: AbortSignal | undefined;
    const kms = roleClient((op, forward, signal) => {
      if (op !== 'GetKeyPolicy') return forward();
      policySignal = signal;
      abort.abort();
      return untilAborted(signal);
    });
    // keyAudit off: this is about the diagnosis's GetKeyPolicy, not the audit's (the audit's own cancellation: trusted-session-key-audit.test.ts).
    const err = await codeOf(getTrustedSessionKey(options({ kms, signal: abort.signal, keyAudit: false }, other)));
    expect(err.code).toBe('ERR_KMS_ABORTED');
    await until(() => policySignal?.aborted === true); // old code: a fixed 3 s timeout, deaf to the caller
    kms.destroy();
  });
});
