#!/usr/bin/env node
// `npm run demo:rollout`: a new enclave image rolled out under a running workflow (issue 19 §6).
// Image v1 → v1+v2 → v2 with the real CLI (`nitro-enclave rollout add|remove`, `nitro-enclave audit`)
// against the KMS simulator, while the confidential workflow of examples/confidential-workflow runs
// on the Temporal stand-in: v1 runs step 1 and is stopped in the middle of step 2, Temporal retries
// that step on v2, which finishes the run. Exits 0 only when every step did what it should.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CreateKeyCommand, GenerateDataKeyWithoutPlaintextCommand, KMSClient } from '@aws-sdk/client-kms';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { fromParentCredentials, getTrustedSessionKey } from 'nitro-enclave-sdk';
import { buildKeyPolicy, serveParentCredentials } from 'nitro-enclave-sdk/parent';
import { createSimulatedEnclave, createSimulatedNsm, createTestPki, kmsClientConfig, startKmsSimulator, startVsockProxyStandIn, testImagePcr } from 'nitro-enclave-sdk/testing';
import { startTemporalStandIn } from 'nitro-enclave-sdk/testing/temporal';
import { connectSocket } from 'nitro-enclave-sdk/vsock';
import { serveSealedActivities } from 'nitro-enclave-sdk/workflow';
import { handlers } from '../confidential-workflow/enclave/app.mjs';
import { runConfidentialWorkflow } from '../confidential-workflow/enclave/starter.mjs';
import { createParentWorker } from '../confidential-workflow/parent/worker.mjs';

const cliBin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'bin.js');
const short = (pcr0) => `${pcr0.slice(0, 12)}…${pcr0.slice(-6)}`;

/** Runs `nitro-enclave <args>` (the built CLI, in its own process) as the key's administrator. */
function cli(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliBin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Runs the demo; `log` gets every line. Returns `ok` (every step did what it should) and what a test
 * checks. `workflowBundle` skips webpack (tests).
 */
export async function runRolloutDemo({ log = console.log, workflowBundle } = {}) {
  const tmp = mkdtempSync(join(tmpdir(), 'nes-rollout-demo-'));
  const cleanup = [];
  const failures = [];
  const check = (ok, what) => {
    log(`  ${ok ? '✔' : '✘'} ${what}`);
    if (!ok) failures.push(what);
    return ok;
  };
  const phase = (title) => log(`\n=== ${title} ===`);
  try {
    // --- AWS side: KMS simulator (with CloudTrail), the key, the parent's relays ---
    phase('1. Image v1: key policy, enclave, worker');
    const pki = createTestPki();
    const images = {
      v1: createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr('confidential-workflow v1') } }),
      v2: createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr('confidential-workflow v2') } }),
    };
    const kms = await startKmsSimulator({ trustAnchors: [pki.root.der] });
    cleanup.push(() => kms.close());
    const admin = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin')));
    cleanup.push(() => admin.destroy());
    const policy = buildKeyPolicy({ accountId: kms.accountId, enclaveRole: 'EnclaveInstanceRole', images: [{ pcr0: images.v1.imageSha384 }] });
    const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Description: 'TSK for the rollout demo', Policy: JSON.stringify(policy) }));
    const keyArn = KeyMetadata.Arn;
    const { CiphertextBlob: blob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyArn, KeySpec: 'AES_256' }));
    log(`KMS simulator: key ${keyArn}, policy (buildKeyPolicy) admits image v1, PCR0 ${short(images.v1.imageSha384)}`);
    const caFile = join(tmp, 'kms-ca.pem');
    writeFileSync(caFile, kms.caPem);
    const who = kms.principal('user/admin');
    const adminEnv = { AWS_ACCESS_KEY_ID: who.accessKeyId, AWS_SECRET_ACCESS_KEY: who.secretAccessKey, AWS_SESSION_TOKEN: '' };
    const kmsFlags = ['--key-id', keyArn, '--endpoint', `https://localhost:${kms.port}`, '--ca-file', caFile, '--region', kms.region];

    const kmsProxy = await startVsockProxyStandIn({ listen: { path: join(tmp, 'kms-proxy.sock') }, target: { port: kms.port } });
    cleanup.push(() => kmsProxy.close());
    const role = kms.principal('EnclaveInstanceRole');
    const credentialsServer = await serveParentCredentials({
      address: { family: 'unix', path: join(tmp, 'credentials.sock') },
      allowPeer: () => true,
      credentials: async () => ({ accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken, expiration: new Date(Date.now() + 3_600_000) }),
      files: { tsk: blob },
    });
    cleanup.push(() => credentialsServer.close());

    /** An enclave of `image`: the TSK by attested Decrypt (the NSM answers for that image's PCR0). */
    const getTsk = (image) =>
      getTrustedSessionKey({
        ciphertextBlob: blob,
        keyId: keyArn,
        region: kms.region,
        credentials: fromParentCredentials({ address: { family: 'unix', path: join(tmp, 'credentials.sock') } }),
        transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: join(tmp, 'kms-proxy.sock') }) },
        nsm: createSimulatedNsm(images[image]),
        attestationTrustAnchors: [pki.root.der],
        tlsCa: kms.caPem,
      });
    // Both enclaves listen where the parent's worker relays to (vsock port 5000 in production).
    const agentsAddress = { family: 'unix', path: join(tmp, 'agents.sock') };
    const steps = [];
    let holdStep2 = () => {};
    const step2Held = new Promise((resolve) => (holdStep2 = resolve));
    /** Serves the example's agents; v1 holds step 2 until it is stopped (a model call in flight). */
    const serve = (image, tsk) => {
      const wrapped = Object.fromEntries(
        Object.entries(handlers).map(([name, h]) => [
          name,
          {
            ...h,
            async run(input, ctx) {
              steps.push(`${image}:${ctx.activity}#${ctx.seq}`);
              log(`  enclave ${image}: step ${ctx.seq} (${ctx.activity}) opened`);
              if (image === 'v1' && ctx.seq === 2) {
                holdStep2();
                await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
              }
              return h.run(input, ctx);
            },
          },
        ]),
      );
      const server = serveSealedActivities({ listen: agentsAddress, key: tsk, handlers: wrapped });
      return { async close() { await server.close(); tsk.dispose(); } };
    };
    const tskV1 = await getTsk('v1');
    let enclaveV1 = serve('v1', tskV1);
    cleanup.push(() => enclaveV1?.close());
    check(tskV1.metadata.pcr0 === images.v1.imageSha384, `enclave v1: TSK released after attestation of PCR0 ${short(tskV1.metadata.pcr0)}; serving the agents`);

    // --- Temporal stand-in, the parent's worker (no key), the starter (its own enclave, image v1) ---
    const standIn = await startTemporalStandIn();
    cleanup.push(() => standIn.close());
    log(`Temporal: the in-process WorkflowService stand-in at ${standIn.address} (nitro-enclave-sdk/testing/temporal) — not a Temporal server`);
    const workerConnection = await NativeConnection.connect({ address: standIn.address });
    cleanup.push(() => workerConnection.close());
    const taskQueue = `rollout-demo-${process.pid}`;
    const worker = await createParentWorker({ connection: workerConnection, taskQueue, enclave: agentsAddress, workflowBundle, maxCachedWorkflows: 0 });
    const running = worker.run();
    cleanup.push(async () => {
      worker.shutdown();
      await running;
    });
    const connection = await Connection.connect({ address: standIn.address });
    cleanup.push(() => connection.close());
    const client = new Client({ connection });
    const workflowId = `rollout-demo-${Date.now()}`;
    log(`Workflow ${workflowId}: started (research → analysis → report)`);
    const brief = { question: 'Should Acme acquire Globex (codename BLUEHERON)?', sources: ['Globex 10-K 2025', 'BLUEHERON diligence memo'] };
    // The starter seals the brief and opens the report in an enclave of its own (its key outlives v1's agents).
    const starterKey = await getTsk('v1');
    cleanup.push(() => starterKey.dispose());
    const result = runConfidentialWorkflow({ client, key: starterKey, brief, workflowId, taskQueue });
    result.catch(() => {});
    await Promise.race([step2Held, result]);
    check(steps.join(' ') === 'v1:research#1 v1:analysis#2', 'the workflow is running: step 1 done on v1, step 2 in progress on v1');

    // --- v1 + v2 ---
    phase('2. rollout add: admit image v2 next to v1');
    log(`$ nitro-enclave rollout add --pcr0 ${short(images.v2.imageSha384)} --key-id … --endpoint … (the KMS simulator)`);
    const added = await cli(['rollout', 'add', '--pcr0', images.v2.imageSha384, ...kmsFlags], adminEnv);
    for (const line of (added.stdout + added.stderr).trimEnd().split('\n')) log(`  | ${line}`);
    check(added.code === 0 && added.stdout.includes(`+           "kms:RecipientAttestation:ImageSha384": "${images.v2.imageSha384}"`), `rollout add exited ${added.code}; the diff adds v2's PCR0`);
    const acks = [...added.stdout.matchAll(/PutKeyPolicy request (\S+):/g)].map((m) => m[1]);

    phase('3. Enclave v2 up, enclave v1 stopped (mid-step); the workflow finishes on v2');
    const tskV2 = await getTsk('v2');
    check(tskV2.metadata.pcr0 === images.v2.imageSha384, `enclave v2: TSK released after attestation of PCR0 ${short(tskV2.metadata.pcr0)} (admitted since the add)`);
    await enclaveV1.close();
    enclaveV1 = undefined;
    log('  enclave v1: stopped; its step 2 was aborted, the worker reported it retryable (ERR_ACTIVITY_UNAVAILABLE) and Temporal retries it');
    const enclaveV2 = serve('v2', tskV2);
    cleanup.push(() => enclaveV2.close());
    log('  enclave v2: serving the agents at the same address');
    const { report } = await result;
    check(steps.slice(2).join(' ') === 'v2:analysis#2 v2:report#3', `steps after the switch ran on v2 (${steps.slice(2).join(', ')})`);
    check(typeof report?.title === 'string', `workflow completed; the report, opened in the starter's enclave: "${report.title}"`);

    // --- v2 only ---
    phase('4. rollout remove: retire image v1');
    log(`$ nitro-enclave rollout remove --pcr0 ${short(images.v1.imageSha384)} …`);
    const refused = await cli(['rollout', 'remove', '--pcr0', images.v1.imageSha384, ...kmsFlags], adminEnv);
    for (const line of (refused.stdout + refused.stderr).trimEnd().split('\n')) log(`  | ${line}`);
    check(refused.code === 5 && refused.stderr.includes('within --drain-window 1h'), `refused (exit ${refused.code}): the audit trail shows v1 received the key within the drain window (1 h)`);
    log('The demo cannot wait an hour for v1 to drain, and it knows v1 is stopped, so it forces:');
    log(`$ nitro-enclave rollout remove --pcr0 ${short(images.v1.imageSha384)} --force …`);
    const forced = await cli(['rollout', 'remove', '--pcr0', images.v1.imageSha384, '--force', ...kmsFlags], adminEnv);
    for (const line of (forced.stdout + forced.stderr).trimEnd().split('\n')) log(`  | ${line}`);
    check(forced.code === 0 && forced.stdout.includes(`-           "kms:RecipientAttestation:ImageSha384": "${images.v1.imageSha384}"`), `rollout remove --force exited ${forced.code}; the diff removes v1's PCR0`);
    acks.push(...[...forced.stdout.matchAll(/PutKeyPolicy request (\S+):/g)].map((m) => m[1]));
    const late = await getTsk('v1').then((k) => (k.dispose(), 'released'), (err) => err.code ?? err.name);
    check(late !== 'released', `a v1 enclave started now gets no TSK (${late})`);

    // --- the audit ---
    phase('5. nitro-enclave audit: attested releases by image');
    log(`$ nitro-enclave audit --key-id … ${acks.map((a) => `--ack ${a}`).join(' ')}   (the two policy changes above are the demo's own)`);
    const audit = await cli(['audit', ...kmsFlags, ...acks.flatMap((a) => ['--ack', a])], adminEnv);
    for (const line of (audit.stdout + audit.stderr).trimEnd().split('\n')) log(`  | ${line}`);
    check(
      new RegExp(`PCR0 ${short(images.v1.imageSha384)}  \\(NOT admitted now\\): 2 release\\(s\\)`).test(audit.stdout) && new RegExp(`PCR0 ${short(images.v2.imageSha384)}: 1 release\\(s\\)`).test(audit.stdout),
      'attested releases by image: v1 twice (agents, starter), v2 once; v1 is no longer admitted',
    );
    const findings = [...audit.stdout.matchAll(/^  ([A-Z_]+) \S+ \S+ by /gm)].map((m) => m[1]);
    check(
      audit.code === 4 && findings.join() === 'IMAGE_NOT_ADMITTED',
      `audit exited ${audit.code} with one finding, ${findings.join(', ') || 'none'}: the v1 enclave started after the removal (step 4) — what the audit is for, a replica of a retired image still asking for the key`,
    );

    log(failures.length === 0 ? '\n✔ rollout demo: every step did what it should' : `\n✘ rollout demo: ${failures.length} step(s) failed`);
    return { ok: failures.length === 0, failures, steps, report, outputs: { added, refused, forced, audit } };
  } finally {
    for (const fn of cleanup.reverse()) await fn();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // ERROR: the worker logs the aborted step 2 attempt as a WARN; the demo says it itself.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const ok = await runRolloutDemo().then(
    (r) => r.ok,
    (err) => {
      console.log(`\n✘ rollout demo stopped: ${err.code ?? err.name}: ${err.message}`);
      return false;
    },
  );
  process.exit(ok ? 0 : 1);
}
