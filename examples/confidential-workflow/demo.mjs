#!/usr/bin/env node
// `npm run demo:workflow`: the confidential workflow, end to end, on this machine.
// A simulated enclave gets the TSK from the KMS simulator (attested Decrypt), serves the three agents
// as sealed activities, and starts the workflow with a sealed brief. The real Temporal worker (Rust
// core) on the "parent" relays sealed bytes between Temporal and the enclave. Temporal is the server
// at TEMPORAL_ADDRESS when one answers, otherwise the in-process stand-in — the demo says which.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CreateAliasCommand, CreateKeyCommand, GenerateDataKeyWithoutPlaintextCommand, KMSClient } from '@aws-sdk/client-kms';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { buildKeyPolicy, serveParentCredentials } from 'nitro-enclave-sdk/parent';
import { createSimulatedEnclave, createSimulatedNsm, kmsClientConfig, startKmsSimulator, startVsockProxyStandIn } from 'nitro-enclave-sdk/testing';
import { startTemporalStandIn } from 'nitro-enclave-sdk/testing/temporal';
import { connectSocket } from 'nitro-enclave-sdk/vsock';
import { peekStateBinding } from 'nitro-enclave-sdk/workflow';
import { startEnclave } from './enclave/app.mjs';
import { runConfidentialWorkflow } from './enclave/starter.mjs';
import { forwardLoopbackToParent } from './enclave/temporal-forwarder.mjs';
import { createParentWorker } from './parent/worker.mjs';

const { temporal } = proto;

export const demoBrief = {
  question: 'Should Acme acquire Globex (codename BLUEHERON)?',
  sources: ['Globex 10-K 2025', 'Acme board minutes of March', 'BLUEHERON diligence memo'],
};

/** A sealed state as the server holds it: the clear (authenticated) binding, then ciphertext. */
export function describeSealed(data) {
  try {
    const b = peekStateBinding(data);
    return `${data.length} bytes, sealed for ${b.activity} #${b.seq} from ${b.producer}, chain ${b.chainId.slice(0, 8)}…: …${Buffer.from(data.subarray(-20)).toString('hex')}`;
  } catch {
    return `${data.length} bytes (not a sealed state): ${Buffer.from(data.subarray(0, 20)).toString('hex')}…`;
  }
}

/** Is a Temporal frontend answering at `address`? */
export async function temporalAnswers(address) {
  try {
    const connection = await Connection.connect({ address, connectTimeout: 3000 });
    await connection.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * The parent's side on the simulators, as the operator's steps 2-5 set it up: the KMS simulator, a
 * key whose policy admits `images` (by PCR0) with its alias and TSK blob, the vsock-proxy stand-in
 * for KMS (`kms-proxy.sock`) and the credentials server (`credentials.sock`) in `dir`. Each thing
 * started is pushed onto `cleanup`.
 */
export async function startSimulatedParent({ dir, images, cleanup, description }) {
  const kms = await startKmsSimulator({ trustAnchors: [images[0].trustAnchor] });
  cleanup.push(() => kms.close());
  const admin = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin')));
  const policy = buildKeyPolicy({ accountId: kms.accountId, enclaveRole: 'EnclaveInstanceRole', images: images.map((image) => ({ pcr0: image.imageSha384 })) });
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Description: description, Policy: JSON.stringify(policy) }));
  await admin.send(new CreateAliasCommand({ AliasName: 'alias/confidential-workflow-tsk', TargetKeyId: KeyMetadata.KeyId }));
  const { CiphertextBlob: blob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: 'alias/confidential-workflow-tsk', KeySpec: 'AES_256' }));
  admin.destroy();

  const kmsProxy = await startVsockProxyStandIn({ listen: { path: join(dir, 'kms-proxy.sock') }, target: { port: kms.port } });
  cleanup.push(() => kmsProxy.close());
  const role = kms.principal('EnclaveInstanceRole');
  const credentialsServer = await serveParentCredentials({
    address: { family: 'unix', path: join(dir, 'credentials.sock') },
    allowPeer: () => true,
    credentials: async () => ({ accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken, expiration: new Date(Date.now() + 3_600_000) }),
    files: { tsk: blob },
  });
  cleanup.push(() => credentialsServer.close());
  return { kms, keyArn: KeyMetadata.Arn };
}

/**
 * The AWS side and the enclave, simulated: KMS key with the attestation policy for the simulated
 * image's PCR0 and the TSK blob (as parent/2-3 do), the parent's KMS relay and credentials server
 * (AF_UNIX stand-ins for vsock), and the enclave app: TSK via attested Decrypt, agents served as
 * sealed activities at `agentsAddress`. Used by the demo and the tests.
 */
export async function startSimulatedDeployment({ dir, log = () => {} }) {
  const cleanup = [];
  const close = async () => {
    for (const fn of cleanup.reverse()) await fn();
  };
  try {
    const image = createSimulatedEnclave();
    const { kms, keyArn } = await startSimulatedParent({ dir, images: [image], cleanup, description: 'Trusted Session Key for Confidential Multi-Agent Workflow' });
    log(`KMS simulator: key ${keyArn}, policy bound to PCR0 ${image.imageSha384.slice(0, 16)}…`);

    const agentsAddress = { family: 'unix', path: join(dir, 'agents.sock') };
    const enclave = await startEnclave({
      region: kms.region,
      keyId: keyArn, // in the image: the ARN baked in at build time
      transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: join(dir, 'kms-proxy.sock') }) },
      credentialsAddress: { family: 'unix', path: join(dir, 'credentials.sock') },
      nsm: createSimulatedNsm(image),
      attestationTrustAnchors: [image.trustAnchor],
      tlsCa: kms.caPem,
      listen: agentsAddress,
    });
    cleanup.push(() => enclave.close());
    log(`Enclave: TSK released by KMS to PCR0 ${enclave.tsk.metadata.pcr0.slice(0, 16)}… after attestation; agents listening (AF_UNIX stand-in for vsock)`);
    return { image, kms, enclave, agentsAddress, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Runs the demo. Returns what a test needs to check it: where Temporal ran, the history the server
 * stored, and the report as decoded inside the enclave. `workflowBundle` skips webpack (tests);
 * `temporalAddress` defaults to TEMPORAL_ADDRESS.
 */
export async function runDemo({ log = console.log, workflowBundle, temporalAddress = process.env.TEMPORAL_ADDRESS, brief = demoBrief } = {}) {
  const tmp = mkdtempSync(join(tmpdir(), 'nes-workflow-demo-'));
  const cleanup = [];
  try {
    const sim = await startSimulatedDeployment({ dir: tmp, log });
    cleanup.push(() => sim.close());
    const { enclave, agentsAddress } = sim;

    // --- Temporal: a real server if one answers, otherwise the in-process stand-in ---
    let address;
    let standIn;
    if (temporalAddress && (await temporalAnswers(temporalAddress))) {
      address = temporalAddress;
      log(`Temporal: the server at ${address}`);
    } else {
      standIn = await startTemporalStandIn();
      cleanup.push(() => standIn.close());
      address = standIn.address;
      log(
        `Temporal: ${temporalAddress ? `no server answers at ${temporalAddress}, so ` : 'TEMPORAL_ADDRESS is not set, so '}` +
          `using the in-process WorkflowService stand-in at ${address} (nitro-enclave-sdk/testing/temporal) — not a Temporal server`,
      );
    }

    // --- the parent's relay to Temporal for the enclave's starter (AF_UNIX stand-in for vsock 7233) ---
    const [temporalHost, temporalPort] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const temporalProxy = await startVsockProxyStandIn({ listen: { path: join(tmp, 'temporal-proxy.sock') }, target: { host: temporalHost, port: temporalPort } });
    cleanup.push(() => temporalProxy.close());

    // --- the parent's worker: real @temporalio/worker, holds no key ---
    const workerConnection = await NativeConnection.connect({ address });
    cleanup.push(() => workerConnection.close());
    const taskQueue = `confidential-agents-${process.pid}`;
    const started = Date.now();
    const worker = await createParentWorker({ connection: workerConnection, taskQueue, enclave: agentsAddress, workflowBundle, ...(standIn ? { maxCachedWorkflows: 0 } : {}) });
    const running = worker.run();
    cleanup.push(async () => {
      worker.shutdown();
      await running;
    });
    log(`Parent worker: ready on task queue ${taskQueue} (${workflowBundle ? 'prebuilt workflow bundle' : 'workflow bundled by webpack'}, ${Date.now() - started} ms)`);

    // --- the starter, inside the enclave: seals the brief, starts the workflow, opens the result ---
    const forwarder = await forwardLoopbackToParent({ port: 0, parent: { family: 'unix', path: join(tmp, 'temporal-proxy.sock') } });
    cleanup.push(() => forwarder.close());
    const connection = await Connection.connect({ address: forwarder.address });
    cleanup.push(() => connection.close());
    const client = new Client({ connection });
    const workflowId = `confidential-demo-${Date.now()}`;
    log(`Starter (in the enclave): sealing the brief for research, step 1, and starting workflow ${workflowId}`);
    const { report, chainId } = await runConfidentialWorkflow({ client, key: enclave.tsk, brief, workflowId, taskQueue });
    log(`Starter: the report carries this run's chain id ${chainId.slice(0, 8)}… (a state from another run of ${workflowId} would be refused)`);
    log('Workflow completed: research → analysis → report, each step opened and re-sealed inside the enclave');

    // --- what the server stored ---
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const historyBytes = temporal.api.history.v1.History.encode(history).finish();
    const EventType = temporal.api.enums.v1.EventType;
    const typeName = (t) => Object.keys(EventType).find((k) => EventType[k] === t)?.replace('EVENT_TYPE_', '') ?? String(t);
    log(`\nWhat the Temporal server stored (${history.events.length} events, ${historyBytes.length} bytes):`);
    for (const event of history.events) {
      const attrs = Object.values(event).find((v) => v && typeof v === 'object' && ('input' in v || 'result' in v));
      const payload = attrs?.input?.payloads?.[0] ?? attrs?.result?.payloads?.[0];
      log(`  #${String(event.eventId).padStart(2)} ${typeName(event.eventType).padEnd(28)}${payload?.data ? ` ${describeSealed(payload.data)}` : ''}`);
    }
    const leaked = [brief.question, ...brief.sources, report.title, report.verdict].filter((s) => Buffer.from(historyBytes).includes(Buffer.from(s)) || standIn?.sawBytes(s));
    log(leaked.length === 0 ? '  → no plaintext: the brief, the agents\' states and the report are ciphertext at the server' : `  → PLAINTEXT FOUND at the server: ${leaked.join(', ')}`);

    log('\nThe report, decoded inside the enclave:');
    log(`  ${report.title}`);
    log(`  verdict: ${report.verdict} (confidence ${report.confidence})`);
    for (const c of report.citations) log(`  ${c}`);
    return { server: standIn ? 'stand-in' : 'real', address, workflowId, history, historyBytes, report, leaked };
  } finally {
    for (const fn of cleanup.reverse()) await fn();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const { leaked } = await runDemo();
  process.exit(leaked.length === 0 ? 0 : 1);
}
