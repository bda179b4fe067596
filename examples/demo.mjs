#!/usr/bin/env node
// `npm run demo`: the main job, end to end, on the embedded simulators.
// A simulated enclave gets its Trusted Session Key from a KMS simulator exactly
// as a real enclave does: attested Decrypt through a vsock-proxy stand-in, TLS
// to kms.us-east-1.amazonaws.com end to end, CMS envelope opened inside.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CreateAliasCommand, CreateKeyCommand, DecryptCommand, GenerateDataKeyWithoutPlaintextCommand, KMSClient } from '@aws-sdk/client-kms';
import { getTrustedSessionKey, prepareTrustedSessionKey } from '../dist/index.js';
import { buildKeyPolicy } from '../dist/parent/index.js';
import { createSimulatedEnclave, createSimulatedNsm, kmsClientConfig, startKmsSimulator, startVsockProxyStandIn } from '../dist/testing/index.js';
import { connectSocket, tcpConnector } from '../dist/vsock/index.js';

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, text) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const tick = paint(32, '✔');
const cross = paint(31, '✘');
const dim = (t) => paint(2, t);
let failures = 0;

async function step(title, fn) {
  const t = performance.now();
  try {
    const detail = await fn();
    console.log(`${tick} ${title} ${dim(`(${(performance.now() - t).toFixed(1)} ms)`)}`);
    for (const line of [].concat(detail ?? [])) console.log(`    ${dim(line)}`);
  } catch (err) {
    failures++;
    console.log(`${cross} ${title}`);
    console.log(`    ${err.code ?? err.name}: ${err.message}`);
  }
}

const short = (hex) => `${hex.slice(0, 16)}…${hex.slice(-8)}`;
const tmp = mkdtempSync(join(tmpdir(), 'nitro-demo-'));
const proxyPath = join(tmp, 'vsock-proxy.sock');
console.log(paint(1, 'nitro-enclave-sdk demo — getTrustedSessionKey() on the embedded simulators\n'));

let enclave, sim, proxy, admin, blob, connect, relay;
await step('Build the enclave image (simulated): PCR0 = image hash', () => {
  enclave = createSimulatedEnclave();
  return [`PCR0 ${short(enclave.imageSha384)}`];
});
await step('Start the KMS simulator (HTTPS, SigV4, key policies, attestation)', async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  admin = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin')));
  return [`${sim.hostname} on ${sim.url}`];
});
await step('Start the vsock-proxy stand-in on the parent (relays to KMS, TLS untouched)', async () => {
  proxy = await startVsockProxyStandIn({ listen: { path: proxyPath }, target: { port: sim.port } });
  try {
    (await connectSocket({ family: 'unix', path: proxyPath })).destroy();
    connect = () => connectSocket({ family: 'unix', path: proxyPath });
    relay = 'native vsock relay (AF_UNIX stand-in for AF_VSOCK)';
  } catch (err) {
    if (err.code !== 'ERR_NATIVE_UNAVAILABLE') throw err;
    const tcp = await startVsockProxyStandIn({ listen: { port: 0 }, target: { port: sim.port } });
    proxy.tcp = tcp;
    connect = tcpConnector(tcp.address.port);
    relay = 'TCP stand-in (native helper not built)';
  }
  return [relay];
});
let keyId;
let keyArn;
await step("Create the key, alias and the seed's key policy for this PCR0 (hardened)", async () => {
  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Description: 'Trusted Session Key for Confidential Multi-Agent Workflow', Policy: JSON.stringify(policy) }));
  keyId = KeyMetadata.KeyId;
  keyArn = KeyMetadata.Arn;
  await admin.send(new CreateAliasCommand({ AliasName: 'alias/confidential-workflow-tsk', TargetKeyId: keyId }));
  return [KeyMetadata.Arn, `${policy.Statement.length} statements: ${policy.Statement.map((s) => s.Sid).join(' · ')}`];
});
await step('Provision the TSK with GenerateDataKeyWithoutPlaintext (no plaintext outside the enclave)', async () => {
  ({ CiphertextBlob: blob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyArn, KeySpec: 'AES_256' })));
  return [`CiphertextBlob: ${blob.length} bytes stored; the key itself exists nowhere yet`];
});

const role = sim.principal('EnclaveInstanceRole');
const credentials = { accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken };
const enclaveOptions = (e) => ({
  ciphertextBlob: blob,
  // Pinned in the enclave image: a key ARN (or alias ARN), never a bare alias the parent's credentials could resolve elsewhere.
  keyId: keyArn,
  region: sim.region,
  credentials,
  transport: { kind: 'custom', connect },
  tlsCa: sim.caPem,
  nsm: createSimulatedNsm(e),
  attestationTrustAnchors: [e.trustAnchor],
});

let tsk;
await step('Inside the enclave: prepare the ephemeral RSA-2048 key pair in the background', () => prepareTrustedSessionKey());
await step('Inside the enclave: getTrustedSessionKey() — attest, Decrypt with Recipient while verifying, open CMS', async () => {
  tsk = await getTrustedSessionKey(enclaveOptions(enclave));
  const t = tsk.metadata.timings;
  return [
    `key pair ${t.keyPairMs.toFixed(1)} ms · NSM attestation ${t.attestationMs.toFixed(1)} ms · KMS ${t.kmsMs.toFixed(1)} ms (offline self-check ${t.verifyMs.toFixed(1)} ms, during it) · CMS ${t.cmsMs.toFixed(1)} ms`,
    `released to PCR0 ${short(tsk.metadata.pcr0)} · ${String(tsk)}`,
    `key audited alongside the Decrypt: ${['DescribeKey', 'GetKeyPolicy', 'ListGrants'].map((op) => `${op} ×${sim.audit.filter((e) => e.eventName === op).length}`).join(' · ')}`,
  ];
});
await step('Use the TSK: seal and open an agent message (XAES-256-GCM envelope v2)', () => {
  const aad = new TextEncoder().encode('agent:planner→agent:executor');
  const sealed = tsk.encrypt(new TextEncoder().encode('transfer plan #42 approved'), aad);
  const opened = new TextDecoder().decode(tsk.decrypt(sealed, aad));
  if (opened !== 'transfer plan #42 approved') throw new Error('round trip failed');
  return [`${sealed.length}-byte envelope, key id ${tsk.metadata.keyId}`];
});
await step('Verify: an enclave with another PCR0 is denied', async () => {
  const other = createSimulatedEnclave({ pcrs: { 0: 'ab'.repeat(48) }, pki: enclave.pki });
  try {
    await getTrustedSessionKey(enclaveOptions(other));
  } catch (err) {
    if (err.code !== 'ERR_KMS_ACCESS_DENIED') throw err;
    return [`${err.code}: ${err.message.split('. ')[0]}.`];
  }
  throw new Error('KMS released the key to the wrong image!');
});
await step("Verify: the enclave audits its key and refuses one under the seed's unhardened policy (the parent could mint a TSK it knows)", async () => {
  // The seed's statements as published (root kms:* through IAM, the attested Decrypt, the administrators), plus the audit's reads.
  const seedShaped = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384, denyUnattested: false });
  const weak = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(seedShaped) }))).KeyMetadata;
  const { CiphertextBlob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: weak.Arn, KeySpec: 'AES_256' }));
  try {
    (await getTrustedSessionKey({ ...enclaveOptions(enclave), ciphertextBlob: CiphertextBlob, keyId: weak.Arn })).dispose();
  } catch (err) {
    if (err.code !== 'ERR_KMS_KEY_UNSAFE') throw err;
    const encrypt = err.message.split('; ').find((m) => m.includes('kms:Encrypt is allowed'));
    return [`${err.code}: ${encrypt?.replace(/^also /, '') ?? err.message.slice(0, 140)}`];
  }
  throw new Error('the enclave adopted a key whose policy lets others mint a TSK!');
});
await step("Verify (the seed's step): an unattested Decrypt is denied", async () => {
  const roleClient = new KMSClient(kmsClientConfig(sim, role));
  try {
    await roleClient.send(new DecryptCommand({ CiphertextBlob: blob }));
  } catch (err) {
    if (err.name !== 'AccessDeniedException') throw err;
    return [`AccessDeniedException: ${err.message.slice(0, 110)}…`];
  }
  throw new Error('KMS released the key without attestation!');
});
await step('Verify via the audit trail (CloudTrail-like): the Decrypt carried an attestation', () => {
  const ok = sim.audit.find((e) => e.eventName === 'Decrypt' && !e.errorCode && e.additionalEventData);
  if (!ok) throw new Error('no attested Decrypt in the audit trail');
  return [`Decrypt by ${ok.userIdentity.arn.split('/').slice(-2).join('/')} · module ${ok.additionalEventData.recipient.attestationDocumentModuleId} · image ${short(ok.additionalEventData.recipient.attestationDocumentEnclaveImageDigest)}`];
});

tsk?.dispose();
await proxy?.tcp?.close();
await proxy?.close();
await sim?.close();
rmSync(tmp, { recursive: true, force: true });
console.log(failures ? `\n${cross} ${failures} step(s) failed` : `\n${tick} all steps passed`);
process.exit(failures ? 1 : 0);
