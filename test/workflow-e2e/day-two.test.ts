// Issue 19, "done when": a workflow fleet runs across a rolling v1 → v2 image replacement AND a TSK
// rotation, on the KMS simulator (with its CloudTrail) and the Temporal stand-in. Two enclaves and two
// parent workers serve one task queue; workflows start in waves, and while they run the operator
//  1. admits image v2 (`nitro-enclave rollout add`, the CLI in-process);
//  2. replaces enclave B by v2 (stopped mid-run, started again);
//  3. rotates the TSK (`nitro-enclave provision --rotate`): every enclave and the starter load the new
//     blob into their running key ring with v1 still sealing, then switch to v2 (docs/operations.md,
//     "Ship the ring"), while one step is held open across the switch;
//  4. replaces enclave A by v2 (its ring: both blobs);
//  5. drops v1 (`rollout remove`: refused within the drain window, done once it has passed); a v1
//     enclave then gets no TSK;
//  6. retires the v1 blob as docs/operations.md says: once every workflow that began under v1 has
//     closed, roll the enclaves to the ring [v2], run the CloudTrail audit check, archive the blob.
// Every workflow completes with the agents' report; no step is opened more often than Temporal ran
// it; nothing the server stored or received holds a brief, a state or a report in clear.
import { renameSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, expect, it } from 'vitest';
// @ts-expect-error: plain ESM example without type declarations
import { FIRST_STEP } from '../../examples/confidential-workflow/enclave/steps.mjs';
import { rolloutCommand } from '../../src/cli/commands/rollout.js';
import { createTestPki, createSimulatedEnclave, kmsClientConfig, testImagePcr } from '../../src/testing/index.js';
import { openState } from '../../src/workflow/index.js';
import { runCli } from '../helpers/cli.js';
import { gate } from '../helpers/kms.js';
import { brief, expectedReport, startFleet, type BlobSpec, type Enclave, type Fleet } from './helpers/fleet.js';
import { until } from './helpers/processes.js';

Runtime.install({ logger: new DefaultLogger('ERROR') });

const taskQueue = 'day-two';
const pki = createTestPki();
const images = {
  v1: createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr('day-two v1') } }),
  v2: createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr('day-two v2') } }),
};
let fleet: Fleet<'v1' | 'v2'>;

beforeAll(async () => {
  fleet = await startFleet({ images, admitted: ['v1'] });
}, 60_000);
afterAll(() => fleet?.close());

it('workflows run through a rolling v1 → v2 replacement and a TSK rotation: each completes, old states open by key id, new ones seal with the newest, nothing in clear', async () => {
  const { dir, kms, keyArn, standIn } = fleet;
  const t0 = Date.now();
  const phase = (what: string) => console.log(`day-two +${Date.now() - t0} ms: ${what}`);
  writeFileSync(join(dir, 'ca.pem'), kms.caPem);
  const kmsFlags = ['--key-id', keyArn, '--endpoint', `https://localhost:${kms.port}`, '--ca-file', join(dir, 'ca.pem'), '--region', kms.region];
  const operator = (args: string[], now?: Date) => runCli([...args, ...kmsFlags], kms.principal('user/admin'), now ? { invoke: (a, io) => rolloutCommand(a.slice(1), io, () => now) } : {});
  const v1Path = join(dir, 'tsk.v1.bin');
  writeFileSync(v1Path, fleet.blob);
  const v1Blob: BlobSpec = { blob: Buffer.from(fleet.blob).toString('base64') };

  // The starter is an enclave too (image v1): it seals the briefs and opens the reports with its ring.
  const starterClient = fleet.tskClient('v1');
  const handles = new Map<string, Awaited<ReturnType<Fleet<'v1' | 'v2'>['startWorkflow']>>>();
  const wave = async (from: number, to: number) => {
    for (let i = from; i < to; i++) handles.set(`day-two-${i}`, await fleet.startWorkflow(`day-two-${i}`, i, starter, taskQueue));
  };

  // --- v1 fleet: enclaves A and B (ring [v1]), workers A and B; wave 1.
  const [starter, enclaveA, enclaveB] = await Promise.all([
    starterClient.getKeyRing({ keyId: keyArn, blobs: [{ ciphertextBlob: fleet.blob }] }),
    fleet.startEnclave('A', 'v1', 'A'),
    fleet.startEnclave('B', 'v1', 'B'),
    // No worker is killed here: they run in this process (two process start-ups less).
    fleet.startInProcessWorker('worker-A@day-two', 'A', taskQueue),
    fleet.startInProcessWorker('worker-B@day-two', 'B', taskQueue),
  ]);
  const v1 = starter.newest!.metadata.keyId;
  expect([enclaveA.ready.keyIds, enclaveB.ready.keyIds]).toEqual([[v1], [v1]]);
  await wave(0, 3);
  phase('v1 enclaves A, B and workers up; wave 1 started');

  // --- 1. admit v2: the policy change `rollout add` makes.
  const added = await operator(['rollout', 'add', '--pcr0', fleet.pcr0('v2')]);
  expect(added.code, added.stderr).toBe(0);
  expect(added.stdout).toContain(`+           "kms:RecipientAttestation:ImageSha384": "${fleet.pcr0('v2')}"`);

  // --- 2. enclave B replaced by v2 (its steps in flight are cut and retried on A); wave 2. Each
  // replacement is forked ahead and starts (asks KMS, listens) once the test says so.
  const bReplaced = gate();
  const startingB2 = fleet.startEnclave('B2', 'v2', 'B', { after: bReplaced.wait() });
  await enclaveB.stop();
  await wave(3, 6);
  bReplaced.open();
  const enclaveB2 = await startingB2;
  phase('v2 admitted; enclave B replaced by v2; wave 2 started');

  // --- 3. the TSK is rotated while steps run. One step is held open across the switch: it opened a
  // state sealed with v1 and seals its result after the switch (wave 3, started now, has steps to hold).
  const running: Enclave[] = [enclaveA, enclaveB2];
  for (const e of running) e.process.send({ holdNextStep: true });
  await wave(6, 8);
  const heldSteps = () => running.flatMap((e) => e.messages.filter((m) => m.step?.phase === 'held').map((m) => m.step!));
  await until(() => heldSteps().length > 0, 'a step held open');
  const rotated = await operator(['provision', '--rotate', '--from', v1Path, '--out', join(dir, 'tsk.v2.bin')]);
  expect(rotated.code, rotated.stderr).toBe(0);
  const context = JSON.parse(readFileSync(join(dir, 'tsk.v2.bin.context.json'), 'utf8')) as { keyArn: string; encryptionContext: Record<string, string>; version: number };
  expect(context).toEqual({ keyArn: expect.stringMatching(/:key\//), encryptionContext: { tsk: 'v2' }, version: 2 });
  const v2Blob: BlobSpec = { blob: readFileSync(join(dir, 'tsk.v2.bin')).toString('base64'), encryptionContext: context.encryptionContext };
  // Ship both keys with v1 still sealing, so no replica meets a state sealed with a key it lacks…
  const loaded = await Promise.all(running.map((e) => e.ask({ loadKey: v2Blob, keepSealing: true }, (m) => m.keyLoaded !== undefined || m.loadFailed !== undefined)));
  starter.add(await starterClient.get({ keyId: keyArn, ciphertextBlob: readFileSync(join(dir, 'tsk.v2.bin')), encryptionContext: context.encryptionContext }));
  const v2 = starter.newest!.metadata.keyId;
  expect(v2).not.toBe(v1);
  expect(loaded).toEqual([{ keyLoaded: v2 }, { keyLoaded: v2 }]);
  // …then seal with v2 everywhere.
  expect(await Promise.all(running.map((e) => e.ask({ sealWith: v2 }, (m) => m.sealing !== undefined)))).toEqual([{ sealing: v2 }, { sealing: v2 }]);
  const held = heldSteps();
  for (const e of running) e.process.send({ releaseHeld: true });
  await wave(8, 10);
  phase(`TSK rotated (v1 ${v1} → v2 ${v2}) with ${held.map((s) => `${s.workflowId} ${s.activity}`).join(', ')} held open; wave 4 sealed with v2`);

  // --- 4. enclave A replaced by v2, loading both blobs (v1 states are still in flight); wave 5.
  const aReplaced = gate();
  const startingA2 = fleet.startEnclave('A2', 'v2', 'A', { blobs: [v1Blob, v2Blob], after: aReplaced.wait() });
  await enclaveA.stop();
  await wave(10, 12);
  aReplaced.open();
  const enclaveA2 = await startingA2;
  expect([enclaveA2.ready.keyIds, enclaveA2.ready.sealing]).toEqual([[v1, v2], v2]);
  phase('enclave A replaced by v2 (ring v1, v2): the fleet runs image v2 only; wave 5 started');

  // --- 5. v1 leaves the policy: refused while CloudTrail shows v1 received key material within the
  // drain window; done once the window has passed (the CLI's clock, an hour on: no enclave of v1 ran since).
  const refused = await operator(['rollout', 'remove', '--pcr0', fleet.pcr0('v1')]);
  expect(refused.code).toBe(5);
  expect(refused.stderr).toMatch(new RegExp(`^nitro-enclave rollout remove: refused: PCR0 ${fleet.pcr0('v1').slice(0, 12)}…${fleet.pcr0('v1').slice(-6)} received key material at \\S+, within --drain-window 1h: its enclaves may still be running`));
  const removed = await operator(['rollout', 'remove', '--pcr0', fleet.pcr0('v1')], new Date(Date.now() + 61 * 60_000));
  expect(removed.code, removed.stderr).toBe(0);
  expect(removed.stderr).toBe('');
  expect(removed.stdout).toContain(`-           "kms:RecipientAttestation:ImageSha384": "${fleet.pcr0('v1')}"`);
  const v1Late = await fleet.tskClient('v1').getKeyRing({ keyId: keyArn, blobs: [{ ciphertextBlob: readFileSync(join(dir, 'tsk.v2.bin')), encryptionContext: context.encryptionContext }] }).then(
    () => 'released',
    (err: { code?: string; message?: string }) => err,
  );
  expect(v1Late).toMatchObject({ code: 'ERR_KMS_ACCESS_DENIED', message: expect.stringMatching(new RegExp(`^KMS denied kms:Decrypt to this enclave \\(PCR0 ${fleet.pcr0('v1')}\\)\\. .*KMS said: `, 's')) });
  phase('v1 removed from the key policy (refused within the drain window first); a v1 enclave gets no TSK');

  // --- every workflow completes with the report the agents make from its brief.
  const ids = [...handles.keys()];
  const reports = await Promise.all(ids.map(async (id) => fleet.openReport(starter, id, await handles.get(id)!.result())));
  expect(reports).toEqual(ids.map((_, i) => expectedReport(i)));
  phase('all workflows completed');

  // --- keys: every workflow's states go v1…v1 then v2…v2; those started before the rotation began
  // under v1, those after are all v2, and the held step(s) opened a v1 state and sealed with v2.
  const keysOf = new Map(ids.map((id) => [id, fleet.stateKeyIds(id).map((k) => (k === v1 ? 'v1' : k === v2 ? 'v2' : k))]));
  for (const [id, keys] of keysOf) {
    expect(keys, id).toHaveLength(6);
    expect(keys, id).toEqual([...keys].sort()); // v1…v1 v2…v2, each 'v1' or 'v2'
    expect(keys.every((k) => k === 'v1' || k === 'v2'), id).toBe(true);
  }
  for (let i = 0; i < 8; i++) expect(keysOf.get(`day-two-${i}`)![0], `day-two-${i}`).toBe('v1');
  for (let i = 8; i < 12; i++) expect(keysOf.get(`day-two-${i}`), `day-two-${i}`).toEqual(Array(6).fill('v2'));
  expect(held.length).toBeGreaterThanOrEqual(1);
  for (const step of held) {
    const keys = keysOf.get(step.workflowId)!;
    expect([keys[2 * (step.seq - 1)], keys[2 * (step.seq - 1) + 1], keys.at(-1)], `${step.workflowId} step ${step.seq}`).toEqual(['v1', 'v2', 'v2']);
  }
  const switched = ids.filter((id) => keysOf.get(id)![0] === 'v1' && keysOf.get(id)!.at(-1) === 'v2');
  expect(switched).toEqual(expect.arrayContaining(held.map((s) => s.workflowId)));

  // --- no step opened more often than Temporal ran it; every failed attempt is a step cut by a stop.
  fleet.checkStepsRanOnce(ids);
  for (const f of fleet.failedAttempts((id) => id.startsWith('day-two-'))) {
    expect(f.applicationFailureInfo?.type).toBe('ERR_ACTIVITY_UNAVAILABLE');
    expect(f.message).toMatch(/^the enclave connection was lost/);
  }

  // --- nothing the server stored or received holds a brief, a state or a report in clear.
  fleet.checkNothingInClear(ids.map((_, i) => i));
  phase(`checked ${ids.length} workflows; ${switched.length} began under TSK v1 and finished under v2`);

  // --- 6. retire the v1 blob (docs/operations.md, "Retire the old blob"): every workflow that began
  // under v1 has closed; ship the ring without v1 and roll every enclave; then the audit check.
  const rollStarted = new Date();
  const retiredRoll = gate();
  const starting = Promise.all([fleet.startEnclave('A3', 'v2', 'A', { blobs: [v2Blob], after: retiredRoll.wait() }), fleet.startEnclave('B3', 'v2', 'B', { blobs: [v2Blob], after: retiredRoll.wait() })]);
  await Promise.all([enclaveA2.stop(), enclaveB2.stop()]);
  retiredRoll.open();
  const [enclaveA3, enclaveB3] = await starting;
  expect([enclaveA3.ready.keyIds, enclaveB3.ready.keyIds]).toEqual([[v2], [v2]]);
  await wave(12, 14);
  for (const id of ['day-two-12', 'day-two-13']) expect(fleet.openReport(starter, id, await handles.get(id)!.result())).toEqual(expectedReport(Number(id.slice(8))));
  expect(fleet.stateKeyIds('day-two-12')).toEqual(Array(6).fill(v2));
  // The audit check: since the roll, no Decrypt of the key with a context other than v2's (CloudTrail
  // LookupEvents, as `aws cloudtrail lookup-events` + jq in the runbook). Before it, it finds the v1 loads.
  const trail = new CloudTrailClient(kmsClientConfig(kms, kms.principal('user/admin')));
  const staleLoads = async (since: Date) => {
    const { Events } = await trail.send(new LookupEventsCommand({ StartTime: since, LookupAttributes: [{ AttributeKey: 'EventName', AttributeValue: 'Decrypt' }] }));
    return (Events ?? [])
      .map((e) => JSON.parse(e.CloudTrailEvent!) as { resources?: Array<{ ARN: string }>; requestParameters: { encryptionContext?: Record<string, string> } })
      .filter((e) => (e.resources ?? []).some((r) => r.ARN === keyArn))
      .filter((e) => e.requestParameters.encryptionContext?.tsk !== 'v2');
  };
  expect(await staleLoads(rollStarted)).toEqual([]);
  expect((await staleLoads(new Date(t0))).length).toBeGreaterThanOrEqual(3); // A, B, the starter (B2 and A2 too)
  trail.destroy();
  renameSync(v1Path, join(dir, 'archive.tsk.v1.bin'));
  // A ring without v1 opens no v1 state: ERR_SEALED_WRONG_KEY names the key to load back from the archive.
  const retired = await fleet.tskClient('v2').getKeyRing({ keyId: keyArn, blobs: [{ ciphertextBlob: readFileSync(join(dir, 'tsk.v2.bin')), encryptionContext: context.encryptionContext }] });
  const firstInput = standIn.history('day-two-0').events.find((e) => e.activityTaskScheduledEventAttributes)!.activityTaskScheduledEventAttributes!.input!.payloads![0]!.data!;
  expect(() => openState(retired, firstInput, { workflowId: 'day-two-0', chainId: fleet.chainId('day-two-0'), ...FIRST_STEP, producer: 'client' })).toThrow(
    expect.objectContaining({ code: 'ERR_SEALED_WRONG_KEY', message: `sealed with key id ${v1}, not in this key ring (${v2})` }),
  );
  // …while the starter's ring, which still holds v1, opens it by its key id.
  expect(JSON.parse(new TextDecoder().decode(openState(starter, firstInput, { workflowId: 'day-two-0', chainId: fleet.chainId('day-two-0'), ...FIRST_STEP, producer: 'client' }).plaintext))).toEqual(brief(0));
  retired.dispose();
  starter.dispose();
  fleet.checkNothingInClear([12, 13]);
  phase('v1 blob retired: enclaves on ring [v2], CloudTrail shows no v1 load since, the blob archived');
}, 120_000);
