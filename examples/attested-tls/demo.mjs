#!/usr/bin/env node
// `node examples/attested-tls/demo.mjs` (after `npm run build`): an attested HTTPS service and a
// mutually attested exchange between two enclaves of different images, on simulated enclaves.
import https from 'node:https';
import { createNsmClient } from '../../dist/nsm/index.js';
import { createSimulatedEnclave, createSimulatedNsm, createTestPki, testImagePcr } from '../../dist/testing/index.js';
import { createAttestedHttpsAgent, createAttestedHttpsServer, createAttestedTlsIdentity } from '../../dist/tls/index.js';
import { sendStepResult, startAgentServer, startRelay } from './exchange.mjs';

const pki = createTestPki(); // in production: the AWS root, the default trust anchor
const trustAnchors = [pki.root.der];
async function enclave(image) {
  const sim = createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr(image) } });
  const identity = await createAttestedTlsIdentity({ nsm: createNsmClient(createSimulatedNsm(sim)) });
  return { identity, pcr0: sim.imageSha384 };
}

// 1. A service whose TLS session ends in the enclave.
const service = await enclave('service');
const server = createAttestedHttpsServer(service.identity, (_req, res) => res.end('hello from the enclave\n'));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const agent = createAttestedHttpsAgent({ expectedPcrs: { 0: service.pcr0 }, trustAnchors });
const body = await new Promise((resolve, reject) => {
  https.get({ host: '127.0.0.1', port: server.address().port, path: '/', agent }, (res) => {
    let text = '';
    res.on('data', (c) => (text += c)).on('end', () => resolve(text));
  }).on('error', reject);
});
console.log(`https with an attested certificate (PCR0 ${service.pcr0.slice(0, 16)}…): ${body.trim()}`);
agent.destroy();
server.close();

// 2. Two agents in two enclaves of different images, through a relaying parent.
const planner = await enclave('planner agent');
const writer = await enclave('writer agent');
const receiving = await startAgentServer({ identity: writer.identity, clients: { expectedPcrs: { 0: planner.pcr0 }, trustAnchors } });
const relay = await startRelay({ target: () => ({ host: '127.0.0.1', port: receiving.port }) });
const { ack } = await sendStepResult({ identity: planner.identity, port: relay.port, expectedPcrs: { 0: writer.pcr0 }, trustAnchors, result: { step: 'plan', outline: ['intro', 'findings'] } });
const seen = Buffer.concat([...relay.recorded.up, ...relay.recorded.down]);
console.log(`planner → writer through the parent: ack ${JSON.stringify(ack)}; the parent relayed ${seen.length} bytes, "outline" in clear: ${seen.includes('outline')}`);
receiving.server.close();
relay.server.close();
for (const e of [service, planner, writer]) e.identity.close();
