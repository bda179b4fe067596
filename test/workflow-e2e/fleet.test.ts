// Issue 19 §5: many replicas, rolled. Two parent workers and two enclaves serve one task queue of the
// example's confidential pipeline, on the KMS simulator and the Temporal stand-in, while:
//  - a worker is killed (-9) holding a workflow task (the stand-in's hook kills it as it is handed
//    the task, before the task reaches it), and replaced;
//  - enclave B is killed (-9) mid-step, stays down 5 s, and comes back as image v2 (same socket path);
//  - enclave A is replaced by image v2 (stopped, started again);
//  - meanwhile a single replica (enclave S, worker S, its own queue) is killed mid-step and down 5 s
//    too, with no peer to fail over to;
//  - image v1 is removed from the key policy, after which a v1 enclave gets no TSK.
// Workflows are started in waves so some run through every event. Every workflow completes with the
// report the agents make, no step is run more than Temporal asked, no attempt is spent on an
// unreachable enclave, and nothing the server stored or received holds plaintext.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateKeyCommand, GenerateDataKeyWithoutPlaintextCommand, KMSClient, PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: plain ESM example without type declarations
import { agents, fromBytes, toBytes } from '../../examples/confidential-workflow/enclave/agents.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { FINAL_STEP, FIRST_STEP } from '../../examples/confidential-workflow/enclave/steps.mjs';
import { clearTrustedSessionKeyCache, fromParentCredentials, getTrustedSessionKey, type TrustedSessionKey } from '../../src/index.js';
import { buildKeyPolicy, serveParentCredentials } from '../../src/parent/index.js';
import { createSimulatedEnclave, createSimulatedNsm, createTestPki, kmsClientConfig, startKmsSimulator, startVsockProxyStandIn, testImagePcr, type KmsSimulator, type SimulatedNsm } from '../../src/testing/index.js';
import { startTemporalStandIn, type StartedTask, type TemporalStandIn } from '../../src/testing/temporal/index.js';
import { connectSocket } from '../../src/vsock/index.js';
import { newChainId, openState, sealState } from '../../src/workflow/index.js';
import { cachedWorkflowBundle } from './helpers/bundle.js';
import { startChild, until, type Child } from './helpers/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const exampleDir = join(here, '..', '..', 'examples', 'confidential-workflow');
const { EventType: E, TimeoutType } = temporal.api.enums.v1;
const taskQueue = 'fleet';
const WORKFLOWS = 16;

type EnclaveMessage = { ready?: string; failed?: string; nsm?: number; message?: string; step?: { workflowId: string; activity: string; seq: number; phase: 'opened' | 'done' } };
type Enclave = Child<EnclaveMessage> & { name: string };

Runtime.install({ logger: new DefaultLogger('ERROR') });

const dir = mkdtempSync(join(tmpdir(), 'nes-fleet-'));
const pki = createTestPki();
const images = {
  v1: createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr('confidential-workflow v1') }, moduleId: 'i-00000000000000001-enc0000000000000001' }),
  v2: createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr('confidential-workflow v2') }, moduleId: 'i-00000000000000001-enc0000000000000002' }),
};
const nsms: Record<'v1' | 'v2', SimulatedNsm> = { v1: createSimulatedNsm(images.v1), v2: createSimulatedNsm(images.v2) };
const cleanup: Array<() => Promise<unknown> | unknown> = [];
let kms: KmsSimulator;
let admin: KMSClient;
let keyArn: string;
let blob: Uint8Array;
let standIn: TemporalStandIn;
let client: Client;
let starterKey: TrustedSessionKey;
let bundlePath: string;
const started: StartedTask[] = [];
/** Every step an enclave opened: `${enclave}|${workflowId}|${seq}`. */
const opened: string[] = [];
let killWorkerOnWorkflowTask: Array<Child<{ ready: string }>> | undefined;

/** Both images admitted: the example's policy with a list of PCR0 values where it names one (any matches; a Deny with a list denies only what matches none). */
function policyAdmitting(pcr0s: string[]): string {
  const policy = buildKeyPolicy({ accountId: kms.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: pcr0s[0]! });
  const text = JSON.stringify(policy).replaceAll(`"${pcr0s[0]}"`, JSON.stringify(pcr0s.length === 1 ? pcr0s[0] : pcr0s));
  return text;
}

function enclaveConfig(image: 'v1' | 'v2', listenPath: string) {
  return {
    image,
    blob: Buffer.from(blob).toString('base64'),
    keyArn,
    region: kms.region,
    credentialsPath: join(dir, 'credentials.sock'),
    kmsProxyPath: join(dir, 'kms-proxy.sock'),
    trustAnchor: Buffer.from(pki.root.der).toString('base64'),
    tlsCa: kms.caPem,
    listenPath,
    stepDelayMs: 150,
  };
}

/** An enclave process `name` running `image`, listening where the worker of `slot` relays to. */
async function startEnclaveProcess(name: string, image: 'v1' | 'v2', slot: string): Promise<Enclave> {
  const child = await startChild<EnclaveMessage>('enclave-process.mjs', enclaveConfig(image, join(dir, `enclave-${slot}.sock`)), {
    isReady: (m) => m.ready !== undefined || m.failed !== undefined,
    onMessage: (m, proc) => {
      // The NSM is the hypervisor's: the test process answers for the image this enclave runs.
      if (m.nsm !== undefined) proc.send({ nsmReply: m.nsm, message: Buffer.from(nsms[image].handle(new Uint8Array(Buffer.from(m.message!, 'base64')))).toString('base64') });
      if (m.step?.phase === 'opened') opened.push(`${name}|${m.step.workflowId}|${m.step.seq}`);
    },
  });
  if (child.ready.failed) throw new Error(`enclave ${name} (${image}) failed: ${child.ready.failed}`);
  expect(child.ready.ready).toBe(images[image].imageSha384);
  cleanup.push(() => child.kill9());
  return Object.assign(child, { name });
}

async function startWorkerProcess(identity: string, enclave: string, queue = taskQueue): Promise<Child<{ ready: string }>> {
  const child = await startChild<{ ready: string }>('worker-process.mjs', { kind: 'sealed', address: standIn.address, taskQueue: queue, bundlePath, identity, enclavePath: join(dir, `enclave-${enclave}.sock`) });
  cleanup.push(() => child.kill9());
  return child;
}

function tskOptions() {
  return {
    ciphertextBlob: blob,
    keyId: keyArn,
    region: kms.region,
    credentials: fromParentCredentials({ address: { family: 'unix', path: join(dir, 'credentials.sock') } }),
    transport: { kind: 'custom' as const, connect: () => connectSocket({ family: 'unix', path: join(dir, 'kms-proxy.sock') }) },
    attestationTrustAnchors: [pki.root.der],
    tlsCa: kms.caPem,
  };
}

const brief = (i: number) => ({ question: `Should Acme buy target ${i} (codename FLEETNEEDLE${i})?`, sources: [`FLEETSOURCE${i} annual report`, `FLEETSOURCE${i} site visit`] });
const workflowId = (i: number) => (i < 100 ? `fleet-${i}` : `single-${i}`);

/** Failed attempts the server received (RespondActivityTaskFailed), for the workflows `which` selects. */
function failedAttempts(which: (workflowId: string) => boolean) {
  return standIn
    .recordedCalls()
    .filter((c) => c.method === 'RespondActivityTaskFailed' && which(c.workflowId ?? ''))
    .map((c) => temporal.api.workflowservice.v1.RespondActivityTaskFailedRequest.decode(c.request).failure!);
}

/** Each run's chain id, chosen by its starter; the final state must carry it. */
const chainIds = new Map<number, string>();

function startWorkflow(i: number, queue = taskQueue) {
  const id = workflowId(i);
  const plaintext = toBytes(brief(i));
  const chainId = newChainId();
  chainIds.set(i, chainId);
  const sealedInput = sealState(starterKey, plaintext, { workflowId: id, chainId, ...FIRST_STEP, producer: 'client' });
  // 2 s instead of 10 s: a workflow task held by a killed worker is handed on sooner.
  return client.workflow.start('confidentialPipeline', { taskQueue: queue, workflowId: id, args: [sealedInput], workflowTaskTimeout: '2s' });
}

beforeAll(async () => {
  const t0 = Date.now();
  const workflowBundle = await cachedWorkflowBundle(join(exampleDir, 'workflows', 'pipeline.ts'), [join(exampleDir, 'workflows')]);
  bundlePath = join(dir, 'workflows.js');
  writeFileSync(bundlePath, workflowBundle.code);

  kms = await startKmsSimulator({ trustAnchors: [pki.root.der] });
  cleanup.push(() => kms.close());
  admin = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin')));
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: policyAdmitting([images.v1.imageSha384, images.v2.imageSha384]) }));
  keyArn = KeyMetadata!.Arn!;
  blob = (await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyArn, KeySpec: 'AES_256' }))).CiphertextBlob!;
  const proxy = await startVsockProxyStandIn({ listen: { path: join(dir, 'kms-proxy.sock') }, target: { port: kms.port } });
  cleanup.push(() => proxy.close());
  const role = kms.principal('EnclaveInstanceRole');
  const credentials = await serveParentCredentials({
    address: { family: 'unix', path: join(dir, 'credentials.sock') },
    allowPeer: () => true,
    credentials: async () => ({ accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken, expiration: new Date(Date.now() + 3_600_000) }),
    files: { tsk: blob },
  });
  cleanup.push(() => credentials.close());
  standIn = await startTemporalStandIn({
    onTaskStarted: (task) => {
      started.push(task);
      // Kill -9 the worker the moment it is handed a workflow task: it dies holding it.
      const victim = killWorkerOnWorkflowTask?.find((w) => w.ready.ready === task.identity);
      if (task.kind === 'workflow' && victim) {
        killWorkerOnWorkflowTask = undefined;
        victim.process.kill('SIGKILL');
      }
    },
  });
  cleanup.push(() => standIn.close());
  const connection = await Connection.connect({ address: standIn.address });
  cleanup.push(() => connection.close());
  client = new Client({ connection });
  // The starter runs in an enclave too (it seals the briefs and opens the reports): image v2 here.
  starterKey = await getTrustedSessionKey({ ...tskOptions(), nsm: createSimulatedNsm(images.v2) });
  console.log(`fleet setup: ${Date.now() - t0} ms`);
}, 60_000);

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
  rmSync(dir, { recursive: true, force: true });
});

describe('a fleet of parent workers and enclaves on one task queue, rolled from image v1 to v2', () => {
  it('every workflow completes through worker and enclave kills, a 5 s enclave restart (with and without a healthy peer) and the v1 → v2 roll, with nothing in clear at the server', async () => {
    const t0 = Date.now();
    const phase = (what: string) => console.log(`fleet +${Date.now() - t0} ms: ${what}`);
    // --- v1 fleet: enclaves A and B, workers A and B. The first worker handed a workflow task is
    // killed (-9) at that moment, holding it; a new worker takes its place (same enclave).
    const [enclaveA, enclaveB, workerA, workerB] = await Promise.all([
      startEnclaveProcess('A', 'v1', 'A'),
      startEnclaveProcess('B', 'v1', 'B'),
      startWorkerProcess('worker-A@fleet', 'A'),
      startWorkerProcess('worker-B@fleet', 'B'),
    ]);
    phase('v1 enclaves A, B and workers A, B up');
    killWorkerOnWorkflowTask = [workerA, workerB];
    const handles = [];
    for (let i = 0; i < 4; i++) handles.push(await startWorkflow(i));
    await until(() => killWorkerOnWorkflowTask === undefined, 'a worker is handed a workflow task');
    const heldBy = started.find((t) => t.kind === 'workflow')!;
    const victim = heldBy.identity === 'worker-A@fleet' ? workerA : workerB;
    expect(await victim.exited).toBe('SIGKILL');
    const slot = victim === workerA ? 'A' : 'B';
    phase(`worker ${slot} killed holding the workflow task of ${heldBy.workflowId}`);
    // Alongside, a single replica (enclave S, worker S) serves its own queue: no healthy peer to fail over to.
    const [enclaveS] = await Promise.all([startEnclaveProcess('S', 'v2', 'S'), startWorkerProcess('worker-S@fleet', 'S', 'single'), startWorkerProcess(`worker-${slot}2@fleet`, slot)]);
    phase(`worker ${slot}2 and the single replica S up`);

    // --- enclave B dies (-9) in the middle of its next step, while more workflows arrive; it stays
    // down 5 s and comes back as image v2 on the same socket path (its stale socket file is replaced).
    const killedStepFile = join(dir, 'killed-step.json');
    enclaveB.process.send({ killOnNextStep: killedStepFile });
    enclaveS.process.send({ killOnNextStep: join(dir, 'killed-single.json') });
    for (let i = 4; i < 8; i++) handles.push(await startWorkflow(i));
    const single = [];
    for (let i = 100; i < 104; i++) single.push(await startWorkflow(i, 'single'));
    expect(await enclaveB.exited).toBe('SIGKILL');
    expect(await enclaveS.exited).toBe('SIGKILL');
    const killedStep = JSON.parse(readFileSync(killedStepFile, 'utf8')) as { workflowId: string; activity: string; seq: number };
    phase(`enclave B killed mid-step (${killedStep.workflowId} ${killedStep.activity} #${killedStep.seq}); down for 5 s`);
    expect(existsSync(join(dir, 'enclave-B.sock'))).toBe(true);
    for (let i = 8; i < 12; i++) handles.push(await startWorkflow(i));
    await new Promise((resolve) => setTimeout(resolve, 5000)); // the restart takes 5 s (a delay, not an assertion)
    await Promise.all([startEnclaveProcess('B2', 'v2', 'B'), startEnclaveProcess('S2', 'v2', 'S')]);
    phase('enclaves B (as v2) and S back');

    // --- enclave A is replaced by v2: stopped (its running steps are cut), more workflows arrive, v2 starts.
    await enclaveA.stop();
    for (let i = 12; i < WORKFLOWS; i++) handles.push(await startWorkflow(i));
    await startEnclaveProcess('A2', 'v2', 'A');
    phase('enclave A replaced by v2: the fleet runs v2 only');

    // --- v1 leaves the policy: a v1 enclave starting now gets no TSK.
    await admin.send(new PutKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default', Policy: policyAdmitting([images.v2.imageSha384]) }));
    clearTrustedSessionKeyCache();
    const v1Denied = await getTrustedSessionKey({ ...tskOptions(), nsm: createSimulatedNsm(images.v1) }).then(
      () => 'released',
      (err: { code?: string }) => err.code,
    );
    expect(v1Denied).toBe('ERR_KMS_ACCESS_DENIED');
    phase('v1 removed from the key policy; a v1 enclave is refused');

    // --- every workflow completes with the report the agents make from its brief (no state lost).
    const results = await Promise.all(handles.map((h) => h.result()));
    phase('all workflows completed');
    results.forEach((sealedReport, i) => {
      const opened = openState(starterKey, sealedReport, { workflowId: workflowId(i), chainId: chainIds.get(i)!, ...FINAL_STEP });
      expect(fromBytes(opened.plaintext)).toEqual(agents.report(agents.analysis(agents.research(brief(i)))));
    });

    // --- the histories: one run each, each step completed once, no activity failed for good.
    const runs = standIn.storedHistories();
    expect(runs.map((r) => r.workflowId).filter((id) => id.startsWith('fleet-')).sort()).toEqual(Array.from({ length: WORKFLOWS }, (_, i) => workflowId(i)).sort());
    const attempts = new Map<string, number>(); // `${workflowId}|${seq}` → attempt that completed
    for (let i = 0; i < WORKFLOWS; i++) {
      const events = standIn.history(workflowId(i)).events;
      expect(events.filter((e) => e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)).toHaveLength(3);
      expect(events.some((e) => e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_FAILED || e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT)).toBe(false);
      for (const e of events.filter((x) => x.activityTaskStartedEventAttributes)) {
        const scheduled = events[Number(e.activityTaskStartedEventAttributes!.scheduledEventId) - 1]!.activityTaskScheduledEventAttributes!;
        const seq = Number(JSON.parse(Buffer.from(scheduled.input!.payloads![1]!.data!).toString()));
        attempts.set(`${workflowId(i)}|${seq}`, e.activityTaskStartedEventAttributes!.attempt!);
      }
    }
    // The workflow whose task worker A died holding: timed out after 2 s and finished elsewhere.
    const held = standIn.history(heldBy.workflowId).events;
    const timedOut = held.filter((e) => e.eventType === E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT);
    expect(timedOut.length).toBeGreaterThanOrEqual(1);
    expect(timedOut[0]!.workflowTaskTimedOutEventAttributes!.timeoutType).toBe(TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE);

    // --- no step opened more often than Temporal ran it: a step opened n times completed on attempt ≥ n.
    const opens = new Map<string, string[]>();
    for (const o of opened) {
      const [enclave, wf, seq] = o.split('|');
      opens.set(`${wf}|${seq}`, [...(opens.get(`${wf}|${seq}`) ?? []), enclave!]);
    }
    for (const [step, attempt] of attempts) expect(opens.get(step)?.length ?? 0, step).toBeLessThanOrEqual(attempt);
    // The step enclave B died in was retried and completed by another enclave process.
    const killedKey = `${killedStep.workflowId}|${killedStep.seq}`;
    expect(attempts.get(killedKey)).toBeGreaterThanOrEqual(2);
    expect(opens.get(killedKey)!.at(-1)).not.toBe('B');

    // --- no attempt was spent on an unreachable enclave: every failed attempt the server received is a
    // connection cut mid-step (the kill of B, the stop of A), none a worker that took a task its enclave could not run.
    const failures = failedAttempts((id) => id.startsWith('fleet-'));
    expect(failures.length).toBeGreaterThanOrEqual(1);
    for (const f of failures) {
      expect(f.applicationFailureInfo?.type).toBe('ERR_ACTIVITY_UNAVAILABLE');
      expect(f.message).toMatch(/^the enclave connection was lost/);
    }

    // --- nothing the server stored or received holds a brief, a state or a report in clear.
    for (let i = 0; i < WORKFLOWS; i++) {
      for (const needle of [`FLEETNEEDLE${i}`, `FLEETSOURCE${i}`, `target ${i} (codename`]) expect(standIn.sawBytes(needle), needle).toBe(false);
    }
    for (const needle of ['relevant to', 'supported by independent sources', 'Report: Should', 'citations']) expect(standIn.sawBytes(needle), needle).toBe(false);
    phase(`checked: ${failures.length} attempts cut mid-step, ${opened.filter((o) => o.includes('|fleet-')).length} steps opened for ${attempts.size} steps`);

    // --- the single replica: its 5 s restart (longer than the example's 3 s retry budget) failed no
    // workflow either: the tasks waited, and only the step it cut spent an attempt.
    const singleResults = await Promise.all(single.map((h) => h.result()));
    singleResults.forEach((sealedReport, k) => {
      const i = 100 + k;
      expect(fromBytes(openState(starterKey, sealedReport, { workflowId: workflowId(i), chainId: chainIds.get(i)!, ...FINAL_STEP }).plaintext)).toEqual(agents.report(agents.analysis(agents.research(brief(i)))));
      expect(standIn.sawBytes(`FLEETNEEDLE${i}`)).toBe(false);
    });
    const singleFailures = failedAttempts((id) => id.startsWith('single-'));
    expect(singleFailures.length).toBeGreaterThanOrEqual(1);
    for (const f of singleFailures) expect([f.applicationFailureInfo?.type, f.message?.startsWith('the enclave connection was lost')]).toEqual(['ERR_ACTIVITY_UNAVAILABLE', true]);
  }, 120_000);
});
