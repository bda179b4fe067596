// getTrustedSessionKey against the KMS simulator on loopback, with the floor
// (a bare KMS Decrypt round trip through the same transport) measured in the same run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateDataKeyWithoutPlaintextCommand, KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { clearTrustedSessionKeyCache, getTrustedSessionKey, lastTrustedSessionKeyTimings, prepareTrustedSessionKey } from '../dist/index.js';
import { buildKeyPolicy } from '../dist/parent/index.js';
import { createSimulatedEnclave, createSimulatedNsm, kmsClientConfig, startKmsSimulator, startVsockProxyStandIn } from '../dist/testing/index.js';
import { connectSocket, createStreamHttpsAgent } from '../dist/vsock/index.js';
import { fmt, line } from './lib.mjs';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchTsk({ rounds = 60 } = {}) {
  console.log('\n## getTrustedSessionKey (KMS simulator on loopback, native relay + vsock-proxy stand-in, TLS 1.3)');
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const tmp = mkdtempSync(join(tmpdir(), 'nes-bench-'));
  const enclave = createSimulatedEnclave();
  const sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  const proxyPath = join(tmp, 'proxy.sock');
  const proxy = await startVsockProxyStandIn({ listen: { path: proxyPath }, target: { port: sim.port } });
  const admin = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin')));
  const role = sim.principal('EnclaveInstanceRole');
  const connect = () => connectSocket({ family: 'unix', path: proxyPath });
  // One client, one keep-alive connection pool, through the relay and the proxy: used by floor and TSK alike.
  const client = (p) =>
    new KMSClient({
      region: sim.region,
      credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey, ...(p.sessionToken ? { sessionToken: p.sessionToken } : {}) },
      requestHandler: new NodeHttpHandler({ httpsAgent: createStreamHttpsAgent({ connect, servername: sim.hostname, ca: sim.caPem }) }),
      maxAttempts: 1,
    });
  const roleClient = client(role);

  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  const { KeyId: tskKey, Arn: tskArn } = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }))).KeyMetadata;
  const blob = (await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: tskKey, KeySpec: 'AES_256' }))).CiphertextBlob;
  // The floor decrypts a same-size blob without attestation, with a policy that allows the role to.
  const open = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' }] };
  const floorKey = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(open) }))).KeyMetadata.KeyId;
  const floorBlob = (await admin.send(new EncryptCommand({ KeyId: floorKey, Plaintext: new Uint8Array(32) }))).CiphertextBlob;

  const nsm = createSimulatedNsm(enclave);
  const options = { ciphertextBlob: blob, keyId: tskArn, region: sim.region, kms: roleClient, nsm, attestationTrustAnchors: [enclave.trustAnchor] };
  const floor = [];
  const prepared = [];
  const cold = [];
  const steps = { keyPairMs: [], attestationMs: [], verifyMs: [], kmsMs: [], cmsMs: [] };
  for (let i = 0; i < 5; i++) {
    await roleClient.send(new DecryptCommand({ CiphertextBlob: floorBlob }));
    (await getTrustedSessionKey(options)).dispose();
  }
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await roleClient.send(new DecryptCommand({ CiphertextBlob: floorBlob }));
    floor.push(performance.now() - t);

    await prepareTrustedSessionKey();
    t = performance.now();
    (await getTrustedSessionKey(options)).dispose();
    prepared.push(performance.now() - t);
    const s = lastTrustedSessionKeyTimings();
    for (const k of Object.keys(steps)) steps[k].push(s[k]);

    if (i % 4 === 0) {
      clearTrustedSessionKeyCache(); // drops the prepared pair: this one pays for key generation
      t = performance.now();
      (await getTrustedSessionKey(options)).dispose();
      cold.push(performance.now() - t);
    }
  }
  const f = median(floor);
  const p = median(prepared);
  line('floor: bare KMS Decrypt round trip, same client/transport', fmt(f));
  line('getTrustedSessionKey, key pair prepared', fmt(p), `${(p / f).toFixed(2)} x floor (goal <= 1.5)`);
  line('getTrustedSessionKey, cold (includes RSA-2048 keygen)', fmt(median(cold)), `${(median(cold) / f).toFixed(2)} x floor`);
  const total = Object.values(steps).reduce((a, xs) => a + median(xs), 0);
  console.log(`  share per step (prepared, medians): ${Object.entries(steps).map(([k, xs]) => `${k.replace('Ms', '')} ${median(xs).toFixed(2)} ms (${((median(xs) / total) * 100).toFixed(0)}%)`).join(' · ')}`);
  console.log('  note: "attestation" is the simulated NSM (it issues a fresh P-384 leaf and signs, as AWS does); "kms" includes the simulator verifying the document and building the envelope.');
  await proxy.close();
  await sim.close();
  rmSync(tmp, { recursive: true, force: true });
}
