// TSK rotation (issue 19 §4), on the KMS simulator: `nitro-enclave provision --rotate` writes the next
// blob under the same key with `tsk: v<n>` in its encryption context (and never touches the old one);
// the enclave's client turns the blobs into a key ring (attested Decrypt of each); the codec and
// sealed state open what the old key sealed and seal with the new one.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateAliasCommand, CreateKeyCommand, PutKeyPolicyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTrustedSessionKeyClient, type TrustedSessionKeyClient } from '../../src/kms/index.js';
import { createTskPayloadCodec, METADATA_KEY_ID } from '../../src/temporal/payload-codec.js';
import { createSimulatedEnclave, createSimulatedNsm, defaultPrincipals, kmsClientConfig, startKmsSimulator, type KmsSimulator, type SimulatedPrincipal } from '../../src/testing/index.js';
import { openState, sealState } from '../../src/workflow/index.js';
import { auditablePolicy } from '../helpers/audited-policy.js';
import { client } from '../helpers/kms.js';
import { runCli } from '../helpers/cli.js';

const enclave = createSimulatedEnclave();
const account = '111122223333';
const tmp = mkdtempSync(join(tmpdir(), 'nes-rotation-'));
let sim: KmsSimulator;
let admin: KMSClient;
let caFile: string;
let keyArn: string;
const aliasArn = `arn:aws:kms:us-east-1:${account}:alias/rotated-tsk`;

beforeAll(async () => {
  const principals = defaultPrincipals(account);
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor], principals });
  admin = client(sim, sim.principal('user/admin'));
  const m = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!;
  keyArn = m.Arn!;
  await admin.send(new CreateAliasCommand({ AliasName: 'alias/rotated-tsk', TargetKeyId: m.KeyId! }));
  await admin.send(new PutKeyPolicyCommand({ KeyId: m.KeyId!, PolicyName: 'default', Policy: JSON.stringify(auditablePolicy(account, enclave.imageSha384)) }));
  caFile = join(tmp, 'ca.pem');
  writeFileSync(caFile, sim.caPem);
});
afterAll(async () => {
  admin.destroy();
  await sim.close();
  rmSync(tmp, { recursive: true, force: true });
});

const cli = (args: string[], principal: SimulatedPrincipal = sim.principal('user/admin')) => runCli(args, principal);
const flags = () => ['--endpoint', `https://localhost:${sim.port}`, '--ca-file', caFile, '--region', sim.region];
const file = (name: string) => join(tmp, name);

function tskClient(): TrustedSessionKeyClient {
  const config = kmsClientConfig(sim, sim.principal('EnclaveInstanceRole'));
  return createTrustedSessionKeyClient({ region: sim.region, credentials: config.credentials, requestHandler: config.requestHandler, nsm: createSimulatedNsm(enclave), attestationTrustAnchors: [enclave.trustAnchor], retry: { baseDelayMs: 5, maxDelayMs: 20 } });
}

const decryptContexts = () => sim.audit.filter((e) => e.eventName === 'Decrypt' && !e.errorCode).map((e) => (e.requestParameters as { encryptionContext?: unknown }).encryptionContext);

describe('provision --rotate', () => {
  it('writes v2 then v5 beside v1 (context tsk=v<n>, version from the context file or --version), never overwriting', async () => {
    expect((await cli(['provision', ...flags(), '--key-id', aliasArn, '--out', file('tsk.v1.bin'), '--encryption-context', 'app=research'])).code).toBe(0);
    const v1 = readFileSync(file('tsk.v1.bin'));

    const r2 = await cli(['provision', ...flags(), '--rotate', '--from', file('tsk.v1.bin'), '--out', file('tsk.v2.bin'), '--key-id', aliasArn, '--encryption-context', 'app=research', '--json']);
    expect(r2.code).toBe(0);
    expect(JSON.parse(r2.stdout)).toMatchObject({ file: file('tsk.v2.bin'), contextFile: file('tsk.v2.bin.context.json'), keyArn, encryptionContext: { app: 'research', tsk: 'v2' }, version: 2, previousVersion: 1 });
    expect(JSON.parse(readFileSync(file('tsk.v2.bin.context.json'), 'utf8'))).toEqual({ keyArn, encryptionContext: { app: 'research', tsk: 'v2' }, version: 2 });
    expect(statSync(file('tsk.v2.bin')).mode & 0o777).toBe(0o600);
    expect(readFileSync(file('tsk.v1.bin')).equals(v1)).toBe(true);

    // From v2's context file: key and context come from it, the version is 2 + 1, or --version.
    const r3 = await cli(['provision', ...flags(), '--rotate', '--from', file('tsk.v2.bin'), '--out', file('tsk.v5.bin'), '--version', '5']);
    expect(r3).toMatchObject({ code: 0, stdout: expect.stringContaining('✔ wrote TSK version 5') });
    expect(r3.stdout).toContain(`tsk.v2.bin (version 2) is unchanged: keep it in the enclave's key ring until it is retired`);
    expect(JSON.parse(readFileSync(file('tsk.v5.bin.context.json'), 'utf8'))).toEqual({ keyArn, encryptionContext: { app: 'research', tsk: 'v5' }, version: 5 });
    expect(readdirSync(tmp).filter((f) => f.startsWith('tsk.')).sort()).toEqual(['tsk.v1.bin', 'tsk.v2.bin', 'tsk.v2.bin.context.json', 'tsk.v5.bin', 'tsk.v5.bin.context.json']);
  });

  it('refuses what would overwrite a blob, go backwards or leave the key', async () => {
    const rotate = (...args: string[]) => cli(['provision', ...flags(), '--rotate', ...args]);
    const usage = (stderr: string) => ({ code: 2, stderr: expect.stringContaining(stderr) });
    expect(await rotate('--out', file('x.bin'))).toMatchObject(usage('--rotate needs --from <current blob>'));
    expect(await rotate('--from', file('tsk.v2.bin'), '--out', file('tsk.v1.bin'))).toMatchObject(usage('tsk.v1.bin exists; --rotate never overwrites a file'));
    expect(await rotate('--from', file('tsk.v2.bin'), '--out', file('tsk.v2.bin'))).toMatchObject(usage('--out must be a new file, not the --from blob'));
    expect(await rotate('--from', file('tsk.v2.bin'), '--out', file('x.bin'), '--force')).toMatchObject(usage('--rotate never overwrites a blob: --force is refused'));
    expect(await rotate('--from', file('tsk.v2.bin'), '--out', file('x.bin'), '--version', '2')).toMatchObject(usage('--version 2 is not above the current version 2'));
    expect(await rotate('--from', file('tsk.v2.bin'), '--out', file('x.bin'), '--version', 'three')).toMatchObject(usage('--version must be a positive integer, got "three"'));
    expect(await rotate('--from', file('tsk.v2.bin'), '--out', file('x.bin'), '--encryption-context', 'app=other')).toMatchObject(usage("names the current blob's encryption context: drop --encryption-context"));
    expect(await rotate('--from', file('tsk.v2.bin'), '--out', file('x.bin'), '--key-id', 'arn:aws:kms:us-east-1:111122223333:key/other')).toMatchObject(usage('a rotation stays on one KMS key'));
    expect(await rotate('--from', file('tsk.v1.bin'), '--out', file('x.bin'), '--encryption-context', 'tsk=2')).toMatchObject(usage('tsk=2 is not a rotation version (v1, v2, …)'));
    expect(await rotate('--from', file('missing.bin'), '--out', file('x.bin'))).toMatchObject(usage('--from'));
    expect(await cli(['provision', ...flags(), '--out', file('x.bin'), '--version', '3'])).toMatchObject(usage('--from and --version go with --rotate'));
    expect(readdirSync(tmp)).not.toContain('x.bin');
  });
});

describe('the enclave loads the rotation as a key ring', () => {
  it('getKeyRing decrypts each blob with its context (attested); the newest seals, every key opens by key id; the codec decodes old payloads', async () => {
    const c = tskClient();
    const blob = (v: number) => ({ ciphertextBlobPath: file(`tsk.v${v}.bin`), encryptionContext: v === 1 ? { app: 'research' } : ({ app: 'research', tsk: `v${v}` } as Record<string, string>) });
    const before = decryptContexts().length;
    const old = await c.getKeyRing({ keyId: aliasArn, blobs: [blob(1)] });
    const codec = createTskPayloadCodec({ keys: old });
    const [oldPayload] = await codec.encode([defaultPayloadConverter.toPayload('before the rotation')!]);
    const binding = { workflowId: 'wf', chainId: 'c0ffee00'.repeat(4), activity: 'analysis', seq: 1, producer: 'research' };
    const oldState = sealState(old, new TextEncoder().encode('state'), binding);

    const ring = await c.getKeyRing({ keyId: aliasArn, blobs: [blob(1), blob(2), blob(5)] });
    // Each blob went to KMS with its own context (the three of the ring at once, in any order).
    const sent = decryptContexts().slice(before).map((ec) => JSON.stringify(ec));
    expect(sent.sort()).toEqual([{ app: 'research' }, { app: 'research' }, { app: 'research', tsk: 'v2' }, { app: 'research', tsk: 'v5' }].map((ec) => JSON.stringify(ec)).sort());
    expect(ring.keyIds).toHaveLength(3);
    expect(ring.keyIds[0]).toBe(old.newest!.metadata.keyId);
    expect(ring.newest!.metadata.keyId).toBe(ring.keyIds[2]);

    const newCodec = createTskPayloadCodec({ keys: ring });
    const [decoded] = await newCodec.decode([oldPayload!]);
    expect(defaultPayloadConverter.fromPayload(decoded!)).toBe('before the rotation');
    const [newPayload] = await newCodec.encode([defaultPayloadConverter.toPayload('after')!]);
    expect(new TextDecoder().decode(newPayload!.metadata![METADATA_KEY_ID])).toBe(ring.keyIds[2]);
    expect(((await codec.decode([newPayload!]).catch((e: { code: string }) => e)) as { code: string }).code).toBe('ERR_CODEC_UNKNOWN_KEY');

    const opened = openState(ring, oldState, binding);
    expect(new TextDecoder().decode(opened.plaintext)).toBe('state');
    const newState = sealState(ring, new TextEncoder().encode('next'), binding);
    expect(() => openState(old, newState, binding)).toThrow(expect.objectContaining({ code: 'ERR_SEALED_WRONG_KEY' }));
    expect(new TextDecoder().decode(openState(ring, newState, binding).plaintext)).toBe('next');

    ring.dispose();
    expect(ring.keyIds).toEqual([]);
    expect(() => sealState(ring, new Uint8Array(1), binding)).toThrow(TypeError);
    old.dispose();
    await c.close();
  });

  it('a blob with the wrong context fails the whole ring with KMS’s refusal (ERR_KMS_INVALID_CIPHERTEXT)', async () => {
    const c = tskClient();
    const err = await c.getKeyRing({ keyId: aliasArn, blobs: [{ ciphertextBlobPath: file('tsk.v1.bin'), encryptionContext: { app: 'research' } }, { ciphertextBlobPath: file('tsk.v2.bin'), encryptionContext: { app: 'research', tsk: 'v3' } }] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_KMS_INVALID_CIPHERTEXT' });
    await c.close();
  });

  it('refuses a bad request with TypeError', async () => {
    const c = tskClient();
    await expect(c.getKeyRing({ keyId: aliasArn, blobs: [] })).rejects.toThrow(new TypeError('blobs must be a non-empty array of { ciphertextBlob | ciphertextBlobPath, encryptionContext? }, oldest first'));
    await expect(c.getKeyRing({ keyId: aliasArn } as never)).rejects.toThrow(TypeError);
    await expect(c.getKeyRing({ keyId: aliasArn, blobs: [null as never] })).rejects.toThrow(new TypeError('blobs[0] must be an object'));
    await expect(c.getKeyRing({ keyId: aliasArn, blobs: [{ ciphertextBlob: new Uint8Array(1), ciphertextBlobPath: 'x' }] })).rejects.toThrow(new TypeError('blobs[0]: give exactly one of ciphertextBlob and ciphertextBlobPath'));
    await c.close();
  });
});
