// A fleet on this machine, shared by the fleet tests: the KMS simulator (with its CloudTrail) and a
// key whose policy admits some images, the parent's vsock-proxy and credentials stand-ins, the
// Temporal stand-in with a client, and enclave and worker processes (helpers/*-process.mjs) that a
// test can start, stop and kill -9. State lives in the object startFleet returns.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateKeyCommand, GenerateDataKeyWithoutPlaintextCommand, KMSClient } from '@aws-sdk/client-kms';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { expect } from 'vitest';
// @ts-expect-error: plain ESM example without type declarations
import { agents, fromBytes, toBytes } from '../../../examples/confidential-workflow/enclave/agents.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { FINAL_STEP, FIRST_STEP } from '../../../examples/confidential-workflow/enclave/steps.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { createParentWorker as createExampleWorker } from '../../../examples/confidential-workflow/parent/worker.mjs';
import { createTrustedSessionKeyClient, fromParentCredentials, type GetTrustedSessionKeyOptions, type TrustedSessionKeyClient } from '../../../src/index.js';
import { buildKeyPolicy, serveParentCredentials } from '../../../src/parent/index.js';
import { createSimulatedNsm, kmsClientConfig, startKmsSimulator, startVsockProxyStandIn, type KmsSimulator, type SimulatedEnclave, type SimulatedNsm } from '../../../src/testing/index.js';
import { startTemporalStandIn, type StartedTask, type TemporalStandIn } from '../../../src/testing/temporal/index.js';
import { connectSocket } from '../../../src/vsock/index.js';
import { newChainId, openState, sealState, type SealingKeys } from '../../../src/workflow/index.js';
import { cachedWorkflowBundle } from './bundle.js';
import { startChild, type Child } from './processes.js';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'confidential-workflow');
const { EventType: E } = temporal.api.enums.v1;
const createParentWorker = createExampleWorker as (options: object) => Promise<Worker>;

export type EnclaveMessage = {
  ready?: string;
  warm?: true;
  keyIds?: string[];
  sealing?: string;
  failed?: string;
  keyLoaded?: string;
  loadFailed?: string;
  nsm?: number;
  message?: string;
  step?: { workflowId: string; activity: string; seq: number; phase: 'opened' | 'held' | 'done' };
};

/** An enclave process: `name` runs `image`; `ask` sends a message and resolves with the answer `isAnswer` picks. */
export type Enclave = Child<EnclaveMessage> & { name: string; image: string; ask(message: object, isAnswer: (m: EnclaveMessage) => boolean): Promise<EnclaveMessage> };

/** A TSK blob as an enclave process loads it (base64, with the context it was provisioned with). */
export interface BlobSpec {
  blob: string;
  encryptionContext?: Record<string, string>;
}

export interface FleetOptions<I extends string> {
  /** The images enclaves may run (each its own PCR0). */
  images: Record<I, SimulatedEnclave>;
  /** The images the key policy admits at the start (a policy `nitro-enclave policy` writes). */
  admitted: NoInfer<I>[];
  /** Each task the stand-in hands a worker, as it is handed. */
  onTaskStarted?: (task: StartedTask) => void;
  /** How long each enclave step takes (a model call), so kills and stops land mid-step. Default 150. */
  stepDelayMs?: number;
}

/** The key id in a sealed state's envelope (clear bytes: which key sealed it; docs/formats.md). */
export function sealedKeyId(sealed: Uint8Array): string {
  const b = (sealed[1]! << 8) | sealed[2]!;
  return Buffer.from(sealed.subarray(3 + b + 1, 3 + b + 9)).toString('hex');
}

/** A brief whose every field is a needle that must never reach the server in clear. */
export const brief = (i: number) => ({ question: `Should Acme buy target ${i} (codename FLEETNEEDLE${i})?`, sources: [`FLEETSOURCE${i} annual report`, `FLEETSOURCE${i} site visit`] });
/** The report the example's agents make from `brief(i)`. */
export const expectedReport = (i: number) => agents.report(agents.analysis(agents.research(brief(i))));

export async function startFleet<I extends string>(options: FleetOptions<I>) {
  const dir = mkdtempSync(join(tmpdir(), 'nes-fleet-'));
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  const nsms = Object.fromEntries(Object.entries<SimulatedEnclave>(options.images).map(([name, image]) => [name, createSimulatedNsm(image)])) as Record<I, SimulatedNsm>;
  const started: StartedTask[] = [];
  /** Every step an enclave opened: `${enclave}|${workflowId}|${seq}`. */
  const opened: string[] = [];
  const chainIds = new Map<string, string>();
  const pcr0 = (image: I) => options.images[image].imageSha384;
  const trustAnchor = Object.values<SimulatedEnclave>(options.images)[0]!.trustAnchor;

  const workflowBundle = await cachedWorkflowBundle(join(exampleDir, 'workflows', 'pipeline.ts'), [join(exampleDir, 'workflows')]);
  const bundlePath = join(dir, 'workflows.js');
  writeFileSync(bundlePath, workflowBundle.code);

  const kms: KmsSimulator = await startKmsSimulator({ trustAnchors: [trustAnchor] });
  cleanup.push(() => kms.close());
  const admin = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin')));
  cleanup.push(() => admin.destroy());
  /** The key policy admitting `images`, as `nitro-enclave policy` / `rollout` write it. */
  const policyAdmitting = (images: I[]) => JSON.stringify(buildKeyPolicy({ accountId: kms.accountId, enclaveRole: 'EnclaveInstanceRole', images: images.map((i) => ({ pcr0: pcr0(i) })) }));
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: policyAdmitting(options.admitted) }));
  const keyArn = KeyMetadata!.Arn!;
  const blob = (await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyArn, KeySpec: 'AES_256' }))).CiphertextBlob!;
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
  const standIn: TemporalStandIn = await startTemporalStandIn({
    onTaskStarted: (task) => {
      started.push(task);
      options.onTaskStarted?.(task);
    },
  });
  cleanup.push(() => standIn.close());
  const connection = await Connection.connect({ address: standIn.address });
  cleanup.push(() => connection.close());
  const client = new Client({ connection });

  /** How an enclave of this machine reaches KMS: the parent's credentials and vsock-proxy stand-ins. */
  const enclaveKmsOptions = (image: I) => ({
    region: kms.region,
    credentials: fromParentCredentials({ address: { family: 'unix', path: join(dir, 'credentials.sock') } }),
    transport: { kind: 'custom' as const, connect: () => connectSocket({ family: 'unix', path: join(dir, 'kms-proxy.sock') }) },
    nsm: nsms[image],
    attestationTrustAnchors: [trustAnchor],
    tlsCa: kms.caPem,
  });

  const fleet = {
    dir,
    kms,
    admin,
    keyArn,
    /** The first TSK blob (no encryption context: version 1 of a rotation). */
    blob,
    standIn,
    client,
    started,
    opened,
    pcr0,
    policyAdmitting,
    /** getTrustedSessionKey's options for an in-process enclave of `image` (e.g. the starter). */
    tskOptions: (image: I): GetTrustedSessionKeyOptions => ({ ciphertextBlob: blob, keyId: keyArn, ...enclaveKmsOptions(image) }),
    /** A TSK client in an in-process enclave of `image`; closed with the fleet. */
    tskClient(image: I): TrustedSessionKeyClient {
      const c = createTrustedSessionKeyClient(enclaveKmsOptions(image));
      cleanup.push(() => c.close());
      return c;
    },

    /**
     * An enclave process `name` running `image`, listening where the worker of `slot` relays to; its
     * ring: `blobs` (default: the first blob). With `after`, the process is forked now and starts
     * (asks KMS, listens) only once `after` resolves: a replacement whose outage the test decides.
     */
    async startEnclave(name: string, image: I, slot: string, ring: { blobs?: BlobSpec[]; sealWith?: string; after?: Promise<unknown> } = {}): Promise<Enclave> {
      const config = {
        waitForStart: ring.after !== undefined,
        blobs: ring.blobs ?? [{ blob: Buffer.from(blob).toString('base64') }],
        ...(ring.sealWith ? { sealWith: ring.sealWith } : {}),
        keyArn,
        region: kms.region,
        credentialsPath: join(dir, 'credentials.sock'),
        kmsProxyPath: join(dir, 'kms-proxy.sock'),
        trustAnchor: Buffer.from(trustAnchor).toString('base64'),
        tlsCa: kms.caPem,
        listenPath: join(dir, `enclave-${slot}.sock`),
        stepDelayMs: options.stepDelayMs ?? 150,
      };
      const child = await startChild<EnclaveMessage>('enclave-process.mjs', config, {
        isReady: (m) => m.ready !== undefined || m.failed !== undefined,
        // A bound, not an assertion: six processes starting at once on a loaded 2-core machine took 30 s.
        boundMs: 90_000,
        onMessage: (m, proc) => {
          // Forked ahead: it starts (gets its keys, listens) once `after` resolves.
          if (m.warm) void ring.after!.then(() => proc.send({ start: true }));
          // The NSM is the hypervisor's: the test process answers for the image this enclave runs.
          if (m.nsm !== undefined) proc.send({ nsmReply: m.nsm, message: Buffer.from(nsms[image].handle(new Uint8Array(Buffer.from(m.message!, 'base64')))).toString('base64') });
          if (m.step?.phase === 'opened') opened.push(`${name}|${m.step.workflowId}|${m.step.seq}`);
        },
      });
      if (child.ready.failed) throw new Error(`enclave ${name} (${image}) failed: ${child.ready.failed}`);
      expect(child.ready.ready).toBe(pcr0(image));
      cleanup.push(() => child.kill9());
      const ask = (message: object, isAnswer: (m: EnclaveMessage) => boolean) =>
        new Promise<EnclaveMessage>((resolve, reject) => {
          const on = (m: EnclaveMessage) => {
            if (!isAnswer(m)) return;
            child.process.off('message', on);
            resolve(m);
          };
          child.process.on('message', on);
          void child.exited.then((status) => reject(new Error(`enclave ${name} exited (${status}) before it answered ${JSON.stringify(message)}`)));
          child.process.send(message);
        });
      return Object.assign(child, { name, image, ask });
    },

    /**
     * A parent worker process relaying to the enclave of `slot`. With `after`, it is forked now and
     * starts (connects, polls) once `after` resolves, as `{ identity, slot }` if the replacement's
     * identity and slot are known only then.
     */
    async startWorker(identity: string, slot: string, taskQueue: string, after?: Promise<{ identity: string; slot: string } | void>): Promise<Child<{ ready: string; warm?: true }>> {
      const config = { kind: 'sealed', address: standIn.address, taskQueue, bundlePath, identity, enclavePath: join(dir, `enclave-${slot}.sock`), waitForStart: after !== undefined };
      const child = await startChild<{ ready: string; warm?: true }>('worker-process.mjs', config, {
        isReady: (m) => m.ready !== undefined,
        boundMs: 90_000,
        onMessage: (m, proc) => {
          if (m.warm) void after!.then((late) => proc.send({ start: true, config: late ? { identity: late.identity, enclavePath: join(dir, `enclave-${late.slot}.sock`) } : {} }));
        },
      });
      cleanup.push(() => child.kill9());
      return child;
    },

    /** Starts the example's pipeline on `brief(i)`, sealed by the starter with `key` (its newest key, for a ring). */
    startWorkflow(workflowId: string, i: number, key: SealingKeys, taskQueue: string): Promise<WorkflowHandle> {
      const chainId = newChainId();
      chainIds.set(workflowId, chainId);
      const sealedInput = sealState(key, toBytes(brief(i)), { workflowId, chainId, ...FIRST_STEP, producer: 'client' });
      // 2 s instead of 10 s: a workflow task held by a killed worker is handed on sooner.
      return client.workflow.start('confidentialPipeline', { taskQueue, workflowId, args: [sealedInput], workflowTaskTimeout: '2s' });
    },

    /**
     * A parent worker in this process (for a replica whose worker the test never kills: one process
     * less to start), relaying to the enclave of `slot`; shut down with the fleet.
     */
    async startInProcessWorker(identity: string, slot: string, taskQueue: string): Promise<void> {
      const nativeConnection = await NativeConnection.connect({ address: standIn.address });
      const worker = await createParentWorker({ connection: nativeConnection, taskQueue, enclave: { family: 'unix', path: join(dir, `enclave-${slot}.sock`) }, workflowBundle, maxCachedWorkflows: 0, identity });
      const running = worker.run();
      cleanup.push(async () => {
        worker.shutdown();
        await running;
        await nativeConnection.close();
      });
    },

    /** The chain id the starter chose for `workflowId`. */
    chainId: (workflowId: string) => chainIds.get(workflowId)!,

    /** The report a workflow returned, opened in the starter's enclave (by key id, for a ring). */
    openReport(key: SealingKeys, workflowId: string, sealedReport: Uint8Array): unknown {
      return fromBytes(openState(key, sealedReport, { workflowId, chainId: chainIds.get(workflowId)!, ...FINAL_STEP }).plaintext);
    },

    /** Failed attempts the server received (RespondActivityTaskFailed), for the workflows `which` selects. */
    failedAttempts(which: (workflowId: string) => boolean) {
      return standIn
        .recordedCalls()
        .filter((c) => c.method === 'RespondActivityTaskFailed' && which(c.workflowId ?? ''))
        .map((c) => temporal.api.workflowservice.v1.RespondActivityTaskFailedRequest.decode(c.request).failure!);
    },

    /**
     * Checks the histories of `workflowIds`: each completed its three steps and no activity failed
     * for good; and no step was opened by an enclave more often than Temporal ran it (a step opened
     * n times completed on attempt ≥ n). Returns, per `${workflowId}|${seq}`, the attempt that
     * completed and the enclaves that opened it.
     */
    checkStepsRanOnce(workflowIds: string[]) {
      const attempts = new Map<string, number>();
      for (const id of workflowIds) {
        const events = standIn.history(id).events;
        expect(events.filter((e) => e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED), id).toHaveLength(3);
        expect(events.some((e) => e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_FAILED || e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT), id).toBe(false);
        for (const e of events.filter((x) => x.activityTaskStartedEventAttributes)) {
          const scheduled = events[Number(e.activityTaskStartedEventAttributes!.scheduledEventId) - 1]!.activityTaskScheduledEventAttributes!;
          const seq = Number(JSON.parse(Buffer.from(scheduled.input!.payloads![1]!.data!).toString()));
          attempts.set(`${id}|${seq}`, e.activityTaskStartedEventAttributes!.attempt!);
        }
      }
      const opens = new Map<string, string[]>();
      for (const o of opened) {
        const [enclave, wf, seq] = o.split('|');
        if (workflowIds.includes(wf!)) opens.set(`${wf}|${seq}`, [...(opens.get(`${wf}|${seq}`) ?? []), enclave!]);
      }
      for (const [step, attempt] of attempts) expect(opens.get(step)?.length ?? 0, step).toBeLessThanOrEqual(attempt);
      return { attempts, opens };
    },

    /** The key id of every state Temporal holds for `workflowId`, in history order: each step's input and result. */
    stateKeyIds(workflowId: string): string[] {
      return standIn.history(workflowId).events.flatMap((e) => {
        const state = e.activityTaskScheduledEventAttributes?.input ?? e.activityTaskCompletedEventAttributes?.result;
        return state ? [sealedKeyId(state.payloads![0]!.data!)] : [];
      });
    },

    /** Checks that nothing the server stored or received holds a brief (of `briefs`), a state or a report in clear. */
    checkNothingInClear(briefs: number[]) {
      for (const i of briefs) for (const needle of [`FLEETNEEDLE${i}`, `FLEETSOURCE${i}`, `target ${i} (codename`]) expect(standIn.sawBytes(needle), needle).toBe(false);
      for (const needle of ['relevant to', 'supported by independent sources', 'Report: Should', 'citations']) expect(standIn.sawBytes(needle), needle).toBe(false);
    },

    async close() {
      for (const fn of cleanup.reverse()) await fn();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fleet;
}

export type Fleet<I extends string> = Awaited<ReturnType<typeof startFleet<I>>>;
