// One enclave of the fleet, in its own process so a test can kill -9 it: the example's agents as
// sealed activities, with its key ring from the KMS simulator by attested Decrypt. Its NSM is the
// test process (the "hypervisor"), over IPC: the image (PCR0) is decided there, not here.
// Configuration: one JSON argument: `blobs` ([{ blob: base64, encryptionContext? }], oldest first:
// the key ring; the last seals unless `sealWith` names another key id), or `blob` (one key).
// Tells the test { ready: pcr0, keyIds, sealing } once it serves, and
// { step: { workflowId, activity, seq, phase: 'opened' | 'held' | 'done' } } for every step it runs.
// From the test:
//  - `{ killOnNextStep: file }`: the next step writes its binding to `file` and the process SIGKILLs
//    itself while the step runs (a crash mid-step, at a known point);
//  - `{ holdNextStep: true }` / `{ releaseHeld: true }`: the next step waits (after it opened its
//    state, before it seals its result) until released;
//  - `{ loadKey: { blob, encryptionContext }, keepSealing }`: a rotated TSK joins the running ring
//    (it seals from now on, unless keepSealing); answers { keyLoaded: keyId } or { loadFailed };
//  - `{ sealWith: keyId }`: that key of the ring seals from now on; answers { sealing: keyId }.
// With `waitForStart`, the process loads its code, says { warm: true } and waits for `{ start: true }`
// before it asks KMS for anything or listens: a test forks it while the enclave it replaces is still
// down, so the replacement's outage is the test's delay, not this machine's process start-up.
import { writeFileSync } from 'node:fs';
import { createTrustedSessionKeyClient, fromParentCredentials } from 'nitro-enclave-sdk';
import { connectSocket } from 'nitro-enclave-sdk/vsock';
import { serveSealedActivities } from 'nitro-enclave-sdk/workflow';
import { handlers } from '../../../examples/confidential-workflow/enclave/app.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const config = JSON.parse(process.argv[2]);
if (config.waitForStart) {
  await new Promise((resolve) => {
    process.on('message', function started(m) {
      if (!m.start) return;
      process.off('message', started);
      resolve();
    });
    process.send({ warm: true });
  });
}

let nextNsmId = 1;
const nsmWaiting = new Map();
let killFile;
let holdNext = false;
const held = [];
const release = () => held.splice(0).forEach((r) => r());
const nsm = {
  request: (message) =>
    new Promise((resolve) => {
      const id = nextNsmId++;
      nsmWaiting.set(id, resolve);
      process.send({ nsm: id, message: Buffer.from(message).toString('base64') });
    }),
};

const tskClient = createTrustedSessionKeyClient({
  region: config.region,
  credentials: fromParentCredentials({ address: { family: 'unix', path: config.credentialsPath } }),
  transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: config.kmsProxyPath }) },
  nsm,
  attestationTrustAnchors: [new Uint8Array(Buffer.from(config.trustAnchor, 'base64'))],
  tlsCa: config.tlsCa,
});
const asBlob = (b) => ({ ciphertextBlob: b.blob, ...(b.encryptionContext ? { encryptionContext: b.encryptionContext } : {}) });
const fail = (err) => `${err.code ?? err.name}: ${err.message}`;

// The ring's newest key seals; adding a key again makes it the newest (TskKeyRing.add).
const sealWith = (keyId) => ring.add(ring.get(keyId));

async function onMessage(m) {
  if (m.nsmReply) {
    nsmWaiting.get(m.nsmReply)?.(new Uint8Array(Buffer.from(m.message, 'base64')));
    nsmWaiting.delete(m.nsmReply);
  }
  if (m.killOnNextStep) killFile = m.killOnNextStep;
  if (m.holdNextStep) holdNext = true;
  if (m.releaseHeld) {
    holdNext = false;
    release();
  }
  if (m.loadKey) {
    try {
      const sealing = ring.newest.metadata.keyId;
      const key = await tskClient.get({ keyId: config.keyArn, ...asBlob(m.loadKey) });
      ring.add(key);
      if (m.keepSealing) sealWith(sealing);
      process.send({ keyLoaded: key.metadata.keyId });
    } catch (err) {
      process.send({ loadFailed: fail(err) });
    }
  }
  if (m.sealWith) {
    sealWith(m.sealWith);
    process.send({ sealing: ring.newest.metadata.keyId });
  }
}
process.on('message', (m) => void onMessage(m));

const ring = await tskClient.getKeyRing({ keyId: config.keyArn, blobs: (config.blobs ?? [{ blob: config.blob }]).map(asBlob) }).catch((err) => {
  process.send({ failed: fail(err) });
  process.exit(3);
});
if (config.sealWith) sealWith(config.sealWith);

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });
const heldUntilReleased = (signal) =>
  new Promise((resolve, reject) => {
    held.push(resolve);
    signal.addEventListener('abort', () => reject(signal.reason));
  });

// The example's handlers, each taking `stepDelayMs` (a model call takes time: kills land mid-step).
const slowed = Object.fromEntries(
  Object.entries(handlers).map(([name, h]) => [
    name,
    {
      ...h,
      async run(input, ctx) {
        const step = { workflowId: ctx.workflowId, activity: ctx.activity, seq: ctx.seq };
        process.send({ step: { ...step, phase: 'opened' } });
        if (killFile) {
          writeFileSync(killFile, JSON.stringify(step));
          process.kill(process.pid, 'SIGKILL');
        }
        if (holdNext) {
          holdNext = false;
          process.send({ step: { ...step, phase: 'held' } });
          await heldUntilReleased(ctx.signal);
        }
        await sleep(config.stepDelayMs, ctx.signal);
        const out = await h.run(input, ctx);
        process.send({ step: { ...step, phase: 'done' } });
        return out;
      },
    },
  ]),
);

const server = serveSealedActivities({ listen: { family: 'unix', path: config.listenPath }, key: ring, handlers: slowed });
process.send({ ready: ring.newest.metadata.pcr0, keyIds: ring.keyIds, sealing: ring.newest.metadata.keyId });
process.once('SIGTERM', async () => {
  await server.close();
  ring.dispose();
  await tskClient.close();
  process.exit(0);
});
