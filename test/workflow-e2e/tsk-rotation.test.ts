// A TSK rotation in the middle of a running workflow (issue 19 §4), on the KMS simulator and the
// Temporal stand-in with the real client and Rust-core worker: the example's pipeline starts with
// states sealed under TSK v1; while its second step runs, the operator runs `provision --rotate` and
// the enclave adds v2 to its key ring; the step opens its v1 state and seals for the next with v2,
// and the workflow completes. A restarted enclave that loads the ring [v1, v2] from the blobs opens
// the report; once v1 is retired (ring [v2]) a v1 state no longer opens.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateAliasCommand, CreateKeyCommand, PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, expect, it } from 'vitest';
// The built package, as the example uses it: keys and sealed state must come from the same copy.
import { createTrustedSessionKeyClient, type TrustedSessionKeyRing } from 'nitro-enclave-sdk/kms';
import { openState, serveSealedActivities, type SealedActivityHandler, type SealedActivityServer } from 'nitro-enclave-sdk/workflow';
// @ts-expect-error: plain ESM example without type declarations
import { agents } from '../../examples/confidential-workflow/enclave/agents.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { handlers } from '../../examples/confidential-workflow/enclave/app.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { runConfidentialWorkflow } from '../../examples/confidential-workflow/enclave/starter.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { FIRST_STEP } from '../../examples/confidential-workflow/enclave/steps.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { createParentWorker } from '../../examples/confidential-workflow/parent/worker.mjs';
import { createSimulatedEnclave, createSimulatedNsm, defaultPrincipals, kmsClientConfig, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { auditablePolicy } from '../helpers/audited-policy.js';
import { client as kmsClient, gate } from '../helpers/kms.js';
import { cachedWorkflowBundle } from './helpers/bundle.js';
import { serverHolds, startTemporal, type TemporalUnderTest } from './helpers/temporal.js';
import { runCli } from '../helpers/cli.js';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'confidential-workflow');
const account = '111122223333';
const aliasArn = `arn:aws:kms:us-east-1:${account}:alias/rotated-tsk`;
const image = createSimulatedEnclave();
const dir = mkdtempSync(join(tmpdir(), 'nes-rotation-wf-'));
const brief = { question: 'Should Acme acquire Globex (codename BLUEHERON)?', sources: ['Globex 10-K 2025', 'Acme board minutes of March'] };

Runtime.install({ logger: new DefaultLogger('ERROR') });
let sim: KmsSimulator;
let env: TemporalUnderTest;
let worker: Worker;
let running: Promise<void>;
let server: SealedActivityServer;
const rings: TrustedSessionKeyRing[] = [];

beforeAll(async () => {
  const principals = defaultPrincipals(account);
  const role = principals.find((p) => p.arn.includes('EnclaveInstanceRole'))!;
  role.identityPolicies = [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:ListGrants'], Resource: '*' }] }];
  sim = await startKmsSimulator({ trustAnchors: [image.trustAnchor], principals });
  const admin = kmsClient(sim, sim.principal('user/admin'));
  const m = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!;
  await admin.send(new CreateAliasCommand({ AliasName: 'alias/rotated-tsk', TargetKeyId: m.KeyId! }));
  await admin.send(new PutKeyPolicyCommand({ KeyId: m.KeyId!, PolicyName: 'default', Policy: JSON.stringify(auditablePolicy(account, image.imageSha384)) }));
  admin.destroy();
  writeFileSync(join(dir, 'ca.pem'), sim.caPem);
  env = await startTemporal('stand-in');
}, 60_000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await server?.close();
  for (const r of rings) r.dispose();
  await env?.close();
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The operator's CLI, in-process, with the admin's credentials. */
async function operator(args: string[]): Promise<void> {
  const r = await runCli([...args, '--endpoint', `https://localhost:${sim.port}`, '--ca-file', join(dir, 'ca.pem'), '--region', sim.region], sim.principal('user/admin'));
  expect(r.code, r.stderr).toBe(0);
}

/** The enclave's TSK client (attested Decrypt through the simulated NSM). */
function enclaveClient() {
  const config = kmsClientConfig(sim, sim.principal('EnclaveInstanceRole'));
  return createTrustedSessionKeyClient({ region: sim.region, credentials: config.credentials, requestHandler: config.requestHandler, nsm: createSimulatedNsm(image), attestationTrustAnchors: [image.trustAnchor] });
}

/** The blobs of the rotation as the enclave loads them: each blob with the context in its `.context.json` (v1 has none). */
function blobs(versions: number[]) {
  return versions.map((v) => {
    const path = join(dir, `tsk.v${v}.bin`);
    if (v === 1) return { ciphertextBlobPath: path };
    return { ciphertextBlobPath: path, encryptionContext: (JSON.parse(readFileSync(`${path}.context.json`, 'utf8')) as { encryptionContext: Record<string, string> }).encryptionContext };
  });
}

/** The key id in a sealed state's envelope (clear bytes: which key sealed it). */
function keyIdOf(sealed: Uint8Array): string {
  const b = (sealed[1]! << 8) | sealed[2]!;
  return Buffer.from(sealed.subarray(3 + b + 1, 3 + b + 9)).toString('hex');
}

it('a workflow started under TSK v1 completes after the rotation to v2: each step opens by key id and seals with the newest; nothing in clear at the server', async () => {
  await operator(['provision', '--key-id', aliasArn, '--out', join(dir, 'tsk.v1.bin')]);
  const tskClient = enclaveClient();
  const ring = await tskClient.getKeyRing({ keyId: aliasArn, blobs: blobs([1]) });
  rings.push(ring);
  const v1 = ring.newest!.metadata.keyId;

  // The analysis step (2 of 3) waits, holding its opened v1 state, until the rotation is done.
  const inAnalysis = gate();
  const rotated = gate();
  const analysis = handlers.analysis as SealedActivityHandler;
  server = serveSealedActivities({
    listen: { family: 'unix', path: join(dir, 'agents.sock') },
    key: ring,
    handlers: { ...handlers, analysis: { ...analysis, run: async (input, ctx) => (inAnalysis.open(), await rotated.wait(), analysis.run(input, ctx)) } },
  });
  const workflowBundle = await cachedWorkflowBundle(join(exampleDir, 'workflows', 'pipeline.ts'), [join(exampleDir, 'workflows')]);
  const taskQueue = `rotation-${process.pid}`;
  worker = await createParentWorker({ connection: env.nativeConnection, namespace: env.namespace, taskQueue, enclave: { family: 'unix', path: join(dir, 'agents.sock') }, workflowBundle, maxCachedWorkflows: 0 });
  running = worker.run();

  const workflowId = `rotation-${Date.now()}`;
  const result = runConfidentialWorkflow({ client: env.client, key: ring, brief, workflowId, taskQueue });
  await inAnalysis.wait();
  await operator(['provision', '--rotate', '--from', join(dir, 'tsk.v1.bin'), '--out', join(dir, 'tsk.v2.bin'), '--key-id', aliasArn]);
  ring.add(await tskClient.get({ keyId: aliasArn, ...blobs([2])[0]! }));
  const v2 = ring.newest!.metadata.keyId;
  expect(v2).not.toBe(v1);
  rotated.open();

  const { report, sealedInput, sealedReport, chainId } = await result;
  expect(report).toEqual(agents.report(agents.analysis(agents.research(brief))));
  expect([keyIdOf(sealedInput), keyIdOf(sealedReport)]).toEqual([v1, v2]);

  // Every state Temporal holds, in order: each activity's input and result, and the key that sealed it.
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const states: string[] = [];
  for (const e of history.events ?? []) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) states.push(`${scheduled.activityType?.name} in: ${keyIdOf(scheduled.input!.payloads![0]!.data!) === v1 ? 'v1' : 'v2'}`);
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed) states.push(`out: ${keyIdOf(completed.result!.payloads![0]!.data!) === v1 ? 'v1' : 'v2'}`);
  }
  expect(states).toEqual(['research in: v1', 'out: v1', 'analysis in: v1', 'out: v2', 'report in: v2', 'out: v2']);
  expect(history.events!.some((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)).toBe(false);
  for (const needle of ['BLUEHERON', 'relevant to', 'supported by independent sources', 'Report: Should Acme']) expect(await serverHolds(env, workflowId, needle), needle).toBe(false);

  // A restarted enclave loads the rotation from the blobs and opens both the old input and the new report.
  const restarted = await tskClient.getKeyRing({ keyId: aliasArn, blobs: blobs([1, 2]) });
  rings.push(restarted);
  expect(restarted.keyIds).toEqual([v1, v2]);
  const input = openState(restarted, sealedInput, { workflowId, chainId, ...FIRST_STEP, producer: 'client' });
  expect(JSON.parse(new TextDecoder().decode(input.plaintext))).toEqual(brief);

  // Retired: an enclave with only v2 opens no v1 state (ERR_SEALED_WRONG_KEY names the key to load).
  const rollFinished = sim.audit.length;
  const retired = await tskClient.getKeyRing({ keyId: aliasArn, blobs: blobs([2]) });
  rings.push(retired);
  expect(() => openState(retired, sealedInput, { workflowId, chainId, ...FIRST_STEP, producer: 'client' })).toThrow(
    expect.objectContaining({ code: 'ERR_SEALED_WRONG_KEY', message: `sealed with key id ${v1}, not in this key ring (${v2})` }),
  );
  // The retirement's audit check (docs/operations.md#rotate-the-tsk) on the simulator's CloudTrail
  // records: since the roll, no Decrypt of the key with a context other than v2's. Before it, it finds the v1 loads.
  const keyArn = retired.newest!.metadata.keyArn;
  const staleLoads = (since: number) =>
    sim.audit
      .slice(since)
      .filter((e) => e.eventName === 'Decrypt' && !e.errorCode && e.resources.some((r) => r.ARN === keyArn))
      .filter((e) => (e.requestParameters as { encryptionContext?: Record<string, string> }).encryptionContext?.tsk !== 'v2');
  expect(staleLoads(rollFinished)).toEqual([]);
  expect(staleLoads(0).length).toBeGreaterThan(0);
  await tskClient.close();
}, 120_000);
