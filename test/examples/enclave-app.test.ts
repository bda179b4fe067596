import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateAliasCommand, CreateKeyCommand, GenerateDataKeyWithoutPlaintextCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { serveParentCredentials } from '../../src/parent/credentials-server.js';
import { createSimulatedEnclave, createSimulatedNsm, startKmsSimulator, startVsockProxyStandIn, type KmsSimulator, type ProxyStandIn } from '../../src/testing/index.js';
import { connectSocket } from '../../src/vsock/index.js';
import { client } from '../helpers/kms.js';
// The example imports 'nitro-enclave-sdk' (the built package, by self-reference), as a user's app would.
// @ts-expect-error: plain ESM example without type declarations
import { startApp } from '../../examples/enclave-app/src/app.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'nes-app-'));
const enclave = createSimulatedEnclave();
let sim: KmsSimulator;
let proxy: ProxyStandIn;
let parent: { close(): void };
let app: { close(): void; tsk: { metadata: { pcr0: string } } };
const appPath = join(tmp, 'app.sock');

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  proxy = await startVsockProxyStandIn({ listen: { path: join(tmp, 'proxy.sock') }, target: { port: sim.port } });
  // The parent's setup steps, as the scripts in examples/enclave-app/parent do them.
  const admin = client(sim, sim.principal('user/admin'));
  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  const keyId = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }))).KeyMetadata!.KeyId!;
  await admin.send(new CreateAliasCommand({ AliasName: 'alias/confidential-workflow-tsk', TargetKeyId: keyId }));
  const blob = (await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256' }))).CiphertextBlob!;
  const role = sim.principal('EnclaveInstanceRole');
  parent = await serveParentCredentials({
    address: { family: 'unix', path: join(tmp, 'parent.sock') },
    allowPeer: () => true,
    credentials: async () => ({ accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken!, expiration: new Date(Date.now() + 3_600_000) }),
    files: { tsk: blob },
  });
  // The enclave side: everything default except the stand-ins for /dev/nsm and vsock.
  app = await startApp({
    region: sim.region,
    keyId: `arn:aws:kms:${sim.region}:${sim.accountId}:alias/confidential-workflow-tsk`,
    transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: join(tmp, 'proxy.sock') }) },
    credentialsAddress: { family: 'unix', path: join(tmp, 'parent.sock') },
    nsm: createSimulatedNsm(enclave),
    attestationTrustAnchors: [enclave.trustAnchor],
    tlsCa: sim.caPem,
    listen: { family: 'unix', path: appPath },
  });
});
afterAll(async () => {
  app?.close();
  parent?.close();
  await proxy.close();
  await sim.close();
  rmSync(tmp, { recursive: true, force: true });
});

function ask(lines: object[]): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const socket = connect(appPath);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      text += d;
      const answers = text.split('\n').filter(Boolean);
      if (answers.length === lines.length) {
        socket.end();
        resolve(answers.map((a) => JSON.parse(a)));
      }
    });
    socket.on('error', reject);
    socket.write(lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  });
}

describe('examples/enclave-app against the simulators', () => {
  it('got the TSK at start (blob and credentials from the parent, attested Decrypt through the proxy)', () => {
    expect(app.tsk.metadata.pcr0).toBe(enclave.imageSha384);
    const decrypts = sim.audit.filter((e) => e.eventName === 'Decrypt' && !e.errorCode);
    expect(decrypts).toHaveLength(1);
    expect(decrypts[0]!.userIdentity!.arn).toContain('EnclaveInstanceRole');
    expect(decrypts[0]!.additionalEventData?.recipient.attestationDocumentEnclaveImageDigest).toBe(Buffer.from(enclave.imageSha384, 'hex').toString('base64')); // CloudTrail writes PCRs in base64
  });

  it('seals and opens agent messages over its socket, bound to the agent', async () => {
    const [sealed] = await ask([{ op: 'seal', agent: 'planner', message: 'transfer plan #42 approved' }]);
    expect(sealed).toMatchObject({ ok: true });
    const [opened, wrongAgent, info, bad] = await ask([
      { op: 'open', agent: 'planner', envelope: sealed!.envelope },
      { op: 'open', agent: 'executor', envelope: sealed!.envelope },
      { op: 'info', agent: 'ops' },
      { op: 'teleport', agent: 'x' },
    ]);
    expect(opened).toEqual({ ok: true, message: 'transfer plan #42 approved' });
    expect(wrongAgent).toEqual({ ok: false, error: 'ERR_TSK_DECRYPT_FAILED' });
    expect(info).toMatchObject({ ok: true, pcr0: enclave.imageSha384 });
    expect(bad).toEqual({ ok: false, error: 'BAD_REQUEST' });
  });

  it('is the gateway for clients: attest binds the nonce and its HPKE key; open re-seals the client\'s message under the TSK for the agent', async () => {
    const { sealToEnclave } = await import('nitro-enclave-sdk/seal');
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const [attested] = await ask([{ op: 'attest', nonce: Buffer.from(nonce).toString('base64') }]);
    expect(attested).toMatchObject({ ok: true });
    const document = new Uint8Array(Buffer.from(attested!.document as string, 'base64'));
    const expected = { pcrs: { 0: enclave.imageSha384 }, nonce, maxAgeMs: 60_000 };
    const sealed = await sealToEnclave(document, new TextEncoder().encode('client secret for the planner'), {
      expected,
      trustAnchors: [enclave.trustAnchor],
      info: new TextEncoder().encode('agent:planner'),
    });
    const b64 = Buffer.from(sealed).toString('base64');
    const [reSealed, wrongAgent, garbage] = await ask([
      { op: 'open', agent: 'planner', sealed: b64 },
      { op: 'open', agent: 'executor', sealed: b64 },
      { op: 'open', agent: 'planner', sealed: 'AAAA' },
    ]);
    expect(reSealed).toMatchObject({ ok: true });
    expect(reSealed).not.toHaveProperty('message'); // the plaintext does not leave the enclave
    expect(wrongAgent).toEqual({ ok: false, error: 'ERR_SEAL_DECRYPT_FAILED' });
    expect(garbage).toEqual({ ok: false, error: 'ERR_SEAL_MALFORMED' });
    const [opened] = await ask([{ op: 'open', agent: 'planner', envelope: reSealed!.envelope }]);
    expect(opened).toEqual({ ok: true, message: 'client secret for the planner' });
    // A document for another nonce is refused by the client before anything is sealed.
    await expect(sealToEnclave(document, new Uint8Array(1), { expected: { ...expected, nonce: new Uint8Array(32) }, trustAnchors: [enclave.trustAnchor] })).rejects.toMatchObject({
      code: 'ERR_ATTESTATION_NONCE_MISMATCH',
    });
  });
});
