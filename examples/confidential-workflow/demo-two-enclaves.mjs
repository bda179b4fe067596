#!/usr/bin/env node
// `npm run demo:two-enclaves`: the confidential workflow with its agents in two enclaves of different
// images. research and analysis run in image A, report in image B; analysis hands its result to
// report over mutually attested TLS, and the parent relays every byte of it (and could route it
// anywhere). Temporal orchestrates as in `npm run demo:workflow` and holds only sealed bytes.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createSimulatedEnclave, createSimulatedNsm, startVsockProxyStandIn, testImagePcr } from 'nitro-enclave-sdk/testing';
import { startTemporalStandIn } from 'nitro-enclave-sdk/testing/temporal';
import { connectSocket } from 'nitro-enclave-sdk/vsock';
import { demoBrief, describeSealed, startSimulatedParent, temporalAnswers } from './demo.mjs';
import { runConfidentialWorkflow } from './enclave/starter.mjs';
import { forwardLoopbackToParent } from './enclave/temporal-forwarder.mjs';
import { startReportEnclave, startResearchEnclave, unixHandoff } from './enclave/two-enclaves.mjs';
import { startEnclaveLink } from './parent/enclave-link.mjs';
import { createParentWorker } from './parent/worker.mjs';

const { temporal } = proto;

/**
 * The AWS side, the parent and both enclaves, simulated: one KMS key whose policy admits both images'
 * PCR0 (both get the TSK by attested Decrypt), the parent's KMS relay, credentials server and the
 * link between the enclaves (AF_UNIX stand-ins for vsock), enclave B (report, handoff listener) and
 * enclave A (research and analysis). `route` lets a test play a parent that routes A's handoff
 * connection elsewhere; `tap` sees every byte the parent relays between the enclaves.
 */
export async function startTwoEnclaveDeployment({ dir, log = () => {}, route, tap = () => {} }) {
  const cleanup = [];
  const close = async () => {
    for (const fn of cleanup.reverse()) await fn();
  };
  try {
    const imageA = createSimulatedEnclave({ pcrs: { 0: testImagePcr('confidential-workflow image A: research, analysis') } });
    const imageB = createSimulatedEnclave({ pki: imageA.pki, pcrs: { 0: testImagePcr('confidential-workflow image B: report') } });
    const trustAnchors = [imageA.trustAnchor];
    const { kms, keyArn } = await startSimulatedParent({ dir, images: [imageA, imageB], cleanup, description: 'Trusted Session Key for Confidential Multi-Agent Workflow (two images)' });
    log(`KMS simulator: key ${keyArn}, policy admits image A ${imageA.imageSha384.slice(0, 16)}… and image B ${imageB.imageSha384.slice(0, 16)}…`);
    const common = (image) => ({
      region: kms.region,
      keyId: keyArn,
      transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: join(dir, 'kms-proxy.sock') }) },
      credentialsAddress: { family: 'unix', path: join(dir, 'credentials.sock') },
      nsm: createSimulatedNsm(image),
      attestationTrustAnchors: trustAnchors,
      tlsCa: kms.caPem,
    });

    const agentsB = { family: 'unix', path: join(dir, 'agents-b.sock') };
    const handoffB = { family: 'unix', path: join(dir, 'handoff-b.sock') };
    const b = await startReportEnclave({ ...common(imageB), listen: agentsB, handoffListen: handoffB, peerPcrs: { 0: imageA.imageSha384 } });
    cleanup.push(() => b.close());
    log(`Enclave B (report): TSK released to PCR0 ${b.tsk.metadata.pcr0.slice(0, 16)}…; attested TLS certificate; admits only image A on the handoff port`);

    const linkAddress = { family: 'unix', path: join(dir, 'link-a.sock') };
    const link = startEnclaveLink({ listen: linkAddress, target: handoffB, ...(route ? { route } : {}), tap });
    cleanup.push(() => link.close());

    const agentsA = { family: 'unix', path: join(dir, 'agents-a.sock') };
    const a = await startResearchEnclave({ ...common(imageA), listen: agentsA, connectHandoff: unixHandoff(linkAddress.path), peerPcrs: { 0: imageB.imageSha384 } });
    cleanup.push(() => a.close());
    log(`Enclave A (research, analysis): TSK released to PCR0 ${a.tsk.metadata.pcr0.slice(0, 16)}…; sends only to image B`);
    return { imageA, imageB, trustAnchors, kms, a, b, enclaves: { research: agentsA, analysis: agentsA, report: agentsB }, handoffB, linkAddress, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Runs the demo; returns what a test checks (history, the parent's view of the link, the report). */
export async function runTwoEnclaveDemo({ log = console.log, workflowBundle, temporalAddress = process.env.TEMPORAL_ADDRESS, brief = demoBrief } = {}) {
  const tmp = mkdtempSync(join(tmpdir(), 'nes-two-enclaves-'));
  const cleanup = [];
  const relayed = { up: [], down: [] };
  try {
    const sim = await startTwoEnclaveDeployment({ dir: tmp, log, tap: (direction, chunk) => relayed[direction].push(Buffer.from(chunk)) });
    cleanup.push(() => sim.close());

    let address;
    let standIn;
    if (temporalAddress && (await temporalAnswers(temporalAddress))) {
      address = temporalAddress;
      log(`Temporal: the server at ${address}`);
    } else {
      standIn = await startTemporalStandIn();
      cleanup.push(() => standIn.close());
      address = standIn.address;
      log(`Temporal: the in-process WorkflowService stand-in at ${address} (nitro-enclave-sdk/testing/temporal) — not a Temporal server`);
    }
    const [temporalHost, temporalPort] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const temporalProxy = await startVsockProxyStandIn({ listen: { path: join(tmp, 'temporal-proxy.sock') }, target: { host: temporalHost, port: temporalPort } });
    cleanup.push(() => temporalProxy.close());

    const workerConnection = await NativeConnection.connect({ address });
    cleanup.push(() => workerConnection.close());
    const taskQueue = `confidential-agents-two-${process.pid}`;
    const worker = await createParentWorker({ connection: workerConnection, taskQueue, enclaves: sim.enclaves, workflowBundle, ...(standIn ? { maxCachedWorkflows: 0 } : {}) });
    const running = worker.run();
    cleanup.push(async () => {
      worker.shutdown();
      await running;
    });
    log(`Parent worker: research and analysis → enclave A, report → enclave B (task queue ${taskQueue})`);

    const forwarder = await forwardLoopbackToParent({ port: 0, parent: { family: 'unix', path: join(tmp, 'temporal-proxy.sock') } });
    cleanup.push(() => forwarder.close());
    const connection = await Connection.connect({ address: forwarder.address });
    cleanup.push(() => connection.close());
    const client = new Client({ connection });
    const workflowId = `confidential-two-enclaves-${Date.now()}`;
    log(`Starter (in enclave A): sealing the brief for research, step 1, and starting workflow ${workflowId}`);
    const { report } = await runConfidentialWorkflow({ client, key: sim.a.tsk, brief, workflowId, taskQueue });
    log('Workflow completed: research (A) → analysis (A) ⇒ attested TLS ⇒ report (B)');

    const up = Buffer.concat(relayed.up);
    const down = Buffer.concat(relayed.down);
    log(`\nWhat the parent relayed between the enclaves: ${up.length} bytes A → B, ${down.length} bytes B → A, all TLS records (ECDHE: the parent cannot decrypt them later either)`);
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const historyBytes = temporal.api.history.v1.History.encode(history).finish();
    log(`What the Temporal server stored (${history.events.length} events, ${historyBytes.length} bytes):`);
    for (const event of history.events) {
      const attrs = Object.values(event).find((v) => v && typeof v === 'object' && ('input' in v || 'result' in v));
      const payload = attrs?.input?.payloads?.[0] ?? attrs?.result?.payloads?.[0];
      if (payload?.data) log(`  #${String(event.eventId).padStart(2)} ${describeSealed(payload.data)}`);
    }
    log('  (the state sealed for report is B’s receipt — a transfer id and a digest — not the analysis)');
    const needles = [brief.question, ...brief.sources, 'supported by independent sources', report.title];
    const leaked = needles.filter((s) => up.includes(s) || down.includes(s) || Buffer.from(historyBytes).includes(Buffer.from(s)) || standIn?.sawBytes(s));
    log(leaked.length === 0 ? '  → no plaintext at the parent or the server' : `  → PLAINTEXT FOUND: ${leaked.join(', ')}`);
    log('\nThe report, decoded inside enclave A:');
    log(`  ${report.title}`);
    log(`  verdict: ${report.verdict} (confidence ${report.confidence})`);
    return { workflowId, report, leaked, relayed: { up, down }, historyBytes };
  } finally {
    for (const fn of cleanup.reverse()) await fn();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const { leaked } = await runTwoEnclaveDemo();
  process.exit(leaked.length === 0 ? 0 : 1);
}
