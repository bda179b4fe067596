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
// @ts-expect-error: plain ESM example without type declarations
import { OPERATIONS } from '../../examples/enclave-app/src/service.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'nes-app-'));
const enclave = createSimulatedEnclave();
let sim: KmsSimulator;
let proxy: ProxyStandIn;
let parent: { close(): void };
let app: { close(): void; tsk: { metadata: { pcr0: string } }; service: { openInside(agent: string, envelope: string): Uint8Array } };
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
    expect(decrypts[0]!.additionalEventData?.recipient.attestationDocumentEnclaveImageDigest).toBe(enclave.imageSha384);
  });

  it('seals agent messages over its socket, bound to the agent; verify checks an envelope without returning it', async () => {
    const [sealed] = await ask([{ op: 'seal', agent: 'planner', message: 'transfer plan #42 approved' }]);
    expect(sealed).toMatchObject({ ok: true });
    const [verified, wrongAgent, info, bad] = await ask([
      { op: 'verify', agent: 'planner', envelope: sealed!.envelope },
      { op: 'verify', agent: 'executor', envelope: sealed!.envelope },
      { op: 'info', agent: 'ops' },
      { op: 'teleport', agent: 'x' },
    ]);
    expect(verified).toEqual({ ok: true, authentic: true, bytes: 'transfer plan #42 approved'.length });
    expect(wrongAgent).toEqual({ ok: false, error: 'ERR_TSK_DECRYPT_FAILED' });
    // Inside the enclave the app's own agents open it.
    expect(new TextDecoder().decode(app.service.openInside('planner', sealed!.envelope as string))).toBe('transfer plan #42 approved');
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
    expect(new TextDecoder().decode(app.service.openInside('planner', reSealed!.envelope as string))).toBe('client secret for the planner');
    // A document for another nonce is refused by the client before anything is sealed.
    await expect(sealToEnclave(document, new Uint8Array(1), { expected: { ...expected, nonce: new Uint8Array(32) }, trustAnchors: [enclave.trustAnchor] })).rejects.toMatchObject({
      code: 'ERR_ATTESTATION_NONCE_MISMATCH',
    });
  });
});

describe("the example's port", () => {
  const SECRET = 'my bank password: hunter2-4711';
  const forms = (text: string) => [text, Buffer.from(text).toString('base64'), Buffer.from(text).toString('hex'), Buffer.from(text.slice(4, 24)).toString('base64')];

  /** A client seals its secret to the enclave, as examples/browser-client does; the parent relays it. */
  async function clientSecret(agent: string): Promise<string> {
    const { sealToEnclave } = await import('nitro-enclave-sdk/seal');
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const [attested] = await ask([{ op: 'attest', nonce: Buffer.from(nonce).toString('base64') }]);
    const document = new Uint8Array(Buffer.from(attested!.document as string, 'base64'));
    const sealed = await sealToEnclave(document, new TextEncoder().encode(SECRET), { expected: { pcrs: { 0: enclave.imageSha384 }, nonce }, trustAnchors: [enclave.trustAnchor], info: new TextEncoder().encode(`agent:${agent}`) });
    return Buffer.from(sealed).toString('base64');
  }

  it('the two-request oracle fails: open(client message) → envelope, then open(envelope) is refused and verify returns no plaintext', async () => {
    const sealed = await clientSecret('planner');
    const [first] = await ask([{ op: 'open', agent: 'planner', sealed }]);
    expect(first).toMatchObject({ ok: true });
    const [second, both, verified] = await ask([
      { op: 'open', agent: 'planner', envelope: first!.envelope }, // main answered { ok: true, message: SECRET }
      { op: 'open', agent: 'planner', sealed, envelope: first!.envelope },
      { op: 'verify', agent: 'planner', envelope: first!.envelope },
    ]);
    expect(second).toEqual({ ok: false, error: 'BAD_REQUEST' });
    expect(both).toEqual({ ok: false, error: 'BAD_REQUEST' });
    expect(verified).toEqual({ ok: true, authentic: true, bytes: SECRET.length });
    for (const f of forms(SECRET)) expect(JSON.stringify([first, second, both, verified])).not.toContain(f);
  });

  it('every operation the parent can reach, with every field it can fill from what it holds: no answer carries the plaintext (enumerated from OPERATIONS)', async () => {
    // The classification: a new operation fails here until someone decides what crosses the port.
    expect(Object.keys(OPERATIONS).sort()).toEqual(['attest', 'info', 'open', 'seal', 'verify']);
    expect(Object.values(OPERATIONS).map((o) => (o as { plaintextOut: boolean }).plaintextOut)).toEqual([false, false, false, false, false]);
    const sealed = await clientSecret('planner');
    const [opened] = await ask([{ op: 'open', agent: 'planner', sealed }]);
    const envelope = opened!.envelope as string;
    // What the parent holds: the client's sealed message and its re-sealed envelope, under every field name.
    const values = [sealed, envelope];
    const fields = ['sealed', 'envelope', 'message', 'nonce'];
    const requests: object[] = [];
    for (const op of Object.keys(OPERATIONS)) {
      for (const agent of ['planner', 'executor', undefined]) {
        for (const field of fields) for (const value of values) requests.push({ op, ...(agent ? { agent } : {}), [field]: value });
        requests.push({ op, ...(agent ? { agent } : {}), sealed, envelope, message: envelope });
      }
    }
    const answers = await ask(requests);
    expect(answers).toHaveLength(requests.length);
    const text = JSON.stringify(answers);
    for (const f of forms(SECRET)) expect(text).not.toContain(f);
    // Not vacuous: the same requests do reach the secret inside (open and verify succeed for the planner).
    expect(answers.filter((a) => a.ok && (a.envelope || a.authentic)).length).toBeGreaterThan(4);
  });
});
