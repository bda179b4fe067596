#!/usr/bin/env node
// `npm run demo:browser`: the whole round trip on this machine. The KMS simulator and a simulated
// enclave (TSK by attested Decrypt, as in the confidential-workflow demo), the enclave's gateway
// operations and agents, the Temporal stand-in, the parent's worker and the HTTP gateway; then it
// prints a URL to open in a browser. Ctrl-C stops everything.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createNsmClient } from 'nitro-enclave-sdk/nsm';
import { createSimulatedNsm } from 'nitro-enclave-sdk/testing';
import { startTemporalStandIn } from 'nitro-enclave-sdk/testing/temporal';
import { startSimulatedDeployment } from '../confidential-workflow/demo.mjs';
import { startBrowserEnclave } from './enclave/service.mjs';
import { buildGatewayPage } from './page/build.mjs';
import { createEnclaveLink } from './parent/enclave-link.mjs';
import { startGateway } from './parent/gateway.mjs';
import { createBrowserWorker } from './parent/worker.mjs';

/**
 * Starts every piece and resolves with `{ url, origin, pcr0, standIn, close }`. `onEnclaveBytes`
 * sees every byte the parent relays on the enclave's gateway port (tests record them);
 * `workflowBundle` skips webpack; `port` is the gateway's (0: any).
 */
export async function startBrowserDemo({ log = console.log, workflowBundle, port = 0, onEnclaveBytes } = {}) {
  const tmp = mkdtempSync(join(tmpdir(), 'nes-browser-demo-'));
  const cleanup = [() => rmSync(tmp, { recursive: true, force: true })];
  const close = async () => {
    for (const fn of cleanup.reverse()) await fn();
  };
  try {
    // --- AWS and the enclave, simulated: the TSK released by the KMS simulator after attestation ---
    const sim = await startSimulatedDeployment({ dir: tmp, log });
    cleanup.push(() => sim.close());
    const agents = { family: 'unix', path: join(tmp, 'browser-agents.sock') };
    const gatewayPort = { family: 'unix', path: join(tmp, 'browser-gateway.sock') };
    const enclave = await startBrowserEnclave({ tsk: sim.enclave.tsk, nsm: createNsmClient(createSimulatedNsm(sim.image)), agentsListen: agents, serviceListen: gatewayPort });
    cleanup.push(() => enclave.close());
    log('Enclave: HPKE receiver made inside (replay protection on), agents and gateway operations listening (AF_UNIX stand-ins for vsock)');

    // --- Temporal: the in-process stand-in ---
    const standIn = await startTemporalStandIn();
    cleanup.push(() => standIn.close());
    log(`Temporal: the in-process WorkflowService stand-in at ${standIn.address} (nitro-enclave-sdk/testing/temporal) — not a Temporal server`);

    // --- the parent: worker and HTTP gateway, no key ---
    const link = createEnclaveLink(gatewayPort, { onBytes: onEnclaveBytes });
    const taskQueue = `browser-agents-${process.pid}`;
    const workerConnection = await NativeConnection.connect({ address: standIn.address });
    cleanup.push(() => workerConnection.close());
    const worker = await createBrowserWorker({ connection: workerConnection, taskQueue, agents, link, workflowBundle, maxCachedWorkflows: 0 });
    const running = worker.run();
    cleanup.push(async () => {
      // On Ctrl-C the Temporal runtime has already begun the worker's shutdown itself.
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    });
    const connection = await Connection.connect({ address: standIn.address });
    cleanup.push(() => connection.close());
    const built = await buildGatewayPage(tmp);
    const gateway = await startGateway({ port, link, client: new Client({ connection }), taskQueue, page: { html: readFileSync(built.html), js: readFileSync(built.js) } });
    cleanup.push(() => gateway.close());

    // The expected image travels in the fragment, which the browser never sends to the gateway: in
    // production it comes from the build (measurements.json), not from the parent.
    const anchor = createHash('sha256').update(sim.image.trustAnchor).digest('hex');
    const url = `${gateway.origin}/#pcr0=${sim.image.imageSha384}&anchor=${anchor}`;
    return { url, origin: gateway.origin, pcr0: sim.image.imageSha384, trustAnchor: sim.image.trustAnchor, standIn, enclave, enclaveGatewayAddress: gatewayPort, close };
  } catch (err) {
    await close();
    throw err;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const port = Number(process.env.PORT ?? 8080);
  console.log('Starting (the worker bundles the workflow with webpack first: 10–20 s)…');
  const demo = await startBrowserDemo({ port });
  console.log(`\nOpen ${demo.url}\n(the page shows the verified PCR0 ${demo.pcr0.slice(0, 16)}…; ask a question, read the report. Ctrl-C to stop.)`);
  for (const signal of ['SIGINT', 'SIGTERM'])
    process.once(signal, async () => {
      await demo.close();
      process.exit(0);
    });
}
