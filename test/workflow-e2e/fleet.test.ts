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
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearTrustedSessionKeyCache, getTrustedSessionKey, type TrustedSessionKey } from '../../src/index.js';
import { createSimulatedEnclave, createTestPki, testImagePcr } from '../../src/testing/index.js';
import { expectedReport, startFleet, type Fleet } from './helpers/fleet.js';
import { until, type Child } from './helpers/processes.js';

const { EventType: E, TimeoutType } = temporal.api.enums.v1;
const taskQueue = 'fleet';
const WORKFLOWS = 16;

Runtime.install({ logger: new DefaultLogger('ERROR') });

const pki = createTestPki();
const images = {
  v1: createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr('confidential-workflow v1') }, moduleId: 'i-00000000000000001-enc0000000000000001' }),
  v2: createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr('confidential-workflow v2') }, moduleId: 'i-00000000000000001-enc0000000000000002' }),
};
let fleet: Fleet<'v1' | 'v2'>;
let starterKey: TrustedSessionKey;
let killWorkerOnWorkflowTask: Array<Child<{ ready: string }>> | undefined;

const workflowId = (i: number) => (i < 100 ? `fleet-${i}` : `single-${i}`);
const startWorkflow = (i: number, queue = taskQueue) => fleet.startWorkflow(workflowId(i), i, starterKey, queue);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  const t0 = Date.now();
  fleet = await startFleet({
    images,
    admitted: ['v1', 'v2'],
    onTaskStarted: (task) => {
      // Kill -9 the worker the moment it is handed a workflow task: it dies holding it.
      const victim = killWorkerOnWorkflowTask?.find((w) => w.ready.ready === task.identity);
      if (task.kind === 'workflow' && victim) {
        killWorkerOnWorkflowTask = undefined;
        victim.process.kill('SIGKILL');
      }
    },
  });
  // The starter runs in an enclave too (it seals the briefs and opens the reports): image v2 here.
  starterKey = await getTrustedSessionKey(fleet.tskOptions('v2'));
  console.log(`fleet setup: ${Date.now() - t0} ms`);
}, 60_000);

afterAll(() => fleet?.close());

describe('a fleet of parent workers and enclaves on one task queue, rolled from image v1 to v2', () => {
  it('every workflow completes through worker and enclave kills, a 5 s enclave restart (with and without a healthy peer) and the v1 → v2 roll, with nothing in clear at the server', async () => {
    const t0 = Date.now();
    const phase = (what: string) => console.log(`fleet +${Date.now() - t0} ms: ${what}`);
    const { dir, standIn } = fleet;
    // --- v1 fleet: enclaves A and B, workers A and B; alongside, a single replica (enclave S, worker
    // S) serves its own queue: no healthy peer to fail over to. The first worker of A and B handed a
    // workflow task is killed (-9) at that moment, holding it; a new worker takes its place (same
    // enclave): forked now, it starts once the victim is known and dead.
    let victimDied!: (replacement: { identity: string; slot: string }) => void;
    const replacementWorker = fleet.startWorker('worker-X2@fleet', 'A', taskQueue, new Promise((resolve) => (victimDied = resolve)));
    const [enclaveA, enclaveB, workerA, workerB, enclaveS] = await Promise.all([
      fleet.startEnclave('A', 'v1', 'A'),
      fleet.startEnclave('B', 'v1', 'B'),
      fleet.startWorker('worker-A@fleet', 'A', taskQueue),
      fleet.startWorker('worker-B@fleet', 'B', taskQueue),
      fleet.startEnclave('S', 'v2', 'S'),
      fleet.startInProcessWorker('worker-S@fleet', 'S', 'single'),
    ]);
    phase('v1 enclaves A, B, workers A, B and the single replica S up');
    killWorkerOnWorkflowTask = [workerA, workerB];
    const handles = [];
    for (let i = 0; i < 4; i++) handles.push(await startWorkflow(i));
    await until(() => killWorkerOnWorkflowTask === undefined, 'a worker is handed a workflow task');
    const heldBy = fleet.started.find((t) => t.kind === 'workflow')!;
    const victim = heldBy.identity === 'worker-A@fleet' ? workerA : workerB;
    expect(await victim.exited).toBe('SIGKILL');
    const slot = victim === workerA ? 'A' : 'B';
    phase(`worker ${slot} killed holding the workflow task of ${heldBy.workflowId}`);
    victimDied({ identity: `worker-${slot}2@fleet`, slot });
    expect((await replacementWorker).ready.ready).toBe(`worker-${slot}2@fleet`);
    phase(`worker ${slot}2 up`);

    // --- enclave B dies (-9) in the middle of its next step, while more workflows arrive; it stays
    // down 5 s and comes back as image v2 on the same socket path (its stale socket file is replaced).
    // S likewise. Their replacements are forked at the kill and start 5 s after it (the restart's
    // length, a delay, not an assertion); so is A's v2 replacement, which starts once A has stopped.
    const killedStepFile = join(dir, 'killed-step.json');
    enclaveB.process.send({ killOnNextStep: killedStepFile });
    enclaveS.process.send({ killOnNextStep: join(dir, 'killed-single.json') });
    for (let i = 4; i < 8; i++) handles.push(await startWorkflow(i));
    const single = [];
    for (let i = 100; i < 104; i++) single.push(await startWorkflow(i, 'single'));
    expect(await enclaveB.exited).toBe('SIGKILL');
    const restartedB = fleet.startEnclave('B2', 'v2', 'B', { after: delay(5000) });
    expect(await enclaveS.exited).toBe('SIGKILL');
    const restartedS = fleet.startEnclave('S2', 'v2', 'S', { after: delay(5000) });
    let stoppedA!: () => void;
    const replacedA = fleet.startEnclave('A2', 'v2', 'A', { after: new Promise<void>((resolve) => (stoppedA = resolve)) });
    const killedStep = JSON.parse(readFileSync(killedStepFile, 'utf8')) as { workflowId: string; activity: string; seq: number };
    phase(`enclave B killed mid-step (${killedStep.workflowId} ${killedStep.activity} #${killedStep.seq}); down for 5 s`);
    expect(existsSync(join(dir, 'enclave-B.sock'))).toBe(true);
    for (let i = 8; i < 12; i++) handles.push(await startWorkflow(i));
    await Promise.all([restartedB, restartedS]);
    phase('enclaves B (as v2) and S back');

    // --- enclave A is replaced by v2: stopped (its running steps are cut), more workflows arrive, v2 starts.
    await enclaveA.stop();
    for (let i = 12; i < WORKFLOWS; i++) handles.push(await startWorkflow(i));
    stoppedA();
    await replacedA;
    phase('enclave A replaced by v2: the fleet runs v2 only');

    // --- v1 leaves the policy while the last workflows finish: a v1 enclave starting now gets no TSK.
    const completed = Promise.all(handles.map((h) => h.result()));
    await fleet.admin.send(new PutKeyPolicyCommand({ KeyId: fleet.keyArn, PolicyName: 'default', Policy: fleet.policyAdmitting(['v2']) }));
    clearTrustedSessionKeyCache();
    const v1Denied = await getTrustedSessionKey(fleet.tskOptions('v1')).then(
      () => 'released',
      (err: { code?: string }) => err.code,
    );
    expect(v1Denied).toBe('ERR_KMS_ACCESS_DENIED');
    phase('v1 removed from the key policy; a v1 enclave is refused');

    // --- every workflow completes with the report the agents make from its brief (no state lost).
    const results = await completed;
    phase('all workflows completed');
    results.forEach((sealedReport, i) => expect(fleet.openReport(starterKey, workflowId(i), sealedReport)).toEqual(expectedReport(i)));

    // --- the histories: one run each, each step completed once, no activity failed for good, and no
    // step opened more often than Temporal ran it (a step opened n times completed on attempt ≥ n).
    const ids = Array.from({ length: WORKFLOWS }, (_, i) => workflowId(i));
    expect(standIn.storedHistories().map((r) => r.workflowId).filter((id) => id.startsWith('fleet-')).sort()).toEqual([...ids].sort());
    const { attempts, opens } = fleet.checkStepsRanOnce(ids);
    // The workflow whose task worker A died holding: timed out after 2 s and finished elsewhere.
    const held = standIn.history(heldBy.workflowId).events;
    const timedOut = held.filter((e) => e.eventType === E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT);
    expect(timedOut.length).toBeGreaterThanOrEqual(1);
    expect(timedOut[0]!.workflowTaskTimedOutEventAttributes!.timeoutType).toBe(TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE);
    // The step enclave B died in was retried and completed by another enclave process.
    const killedKey = `${killedStep.workflowId}|${killedStep.seq}`;
    expect(attempts.get(killedKey)).toBeGreaterThanOrEqual(2);
    expect(opens.get(killedKey)!.at(-1)).not.toBe('B');

    // --- no attempt was spent on an unreachable enclave: every failed attempt the server received is a
    // connection cut mid-step (the kill of B, the stop of A), none a worker that took a task its enclave could not run.
    const failures = fleet.failedAttempts((id) => id.startsWith('fleet-'));
    expect(failures.length).toBeGreaterThanOrEqual(1);
    for (const f of failures) {
      expect(f.applicationFailureInfo?.type).toBe('ERR_ACTIVITY_UNAVAILABLE');
      expect(f.message).toMatch(/^the enclave connection was lost/);
    }

    // --- nothing the server stored or received holds a brief, a state or a report in clear.
    fleet.checkNothingInClear([...ids.keys(), 100, 101, 102, 103]);
    phase(`checked: ${failures.length} attempts cut mid-step, ${[...opens.values()].flat().length} steps opened for ${attempts.size} steps`);

    // --- the single replica: its 5 s restart (longer than the example's 3 s retry budget) failed no
    // workflow either: the tasks waited, and only the step it cut spent an attempt.
    const singleResults = await Promise.all(single.map((h) => h.result()));
    singleResults.forEach((sealedReport, k) => expect(fleet.openReport(starterKey, workflowId(100 + k), sealedReport)).toEqual(expectedReport(100 + k)));
    const singleFailures = fleet.failedAttempts((id) => id.startsWith('single-'));
    expect(singleFailures.length).toBeGreaterThanOrEqual(1);
    for (const f of singleFailures) expect([f.applicationFailureInfo?.type, f.message?.startsWith('the enclave connection was lost')]).toEqual(['ERR_ACTIVITY_UNAVAILABLE', true]);
  }, 120_000);
});
