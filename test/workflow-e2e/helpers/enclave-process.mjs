// One enclave of the fleet, in its own process so a test can kill -9 it: the example's agents as
// sealed activities, with the TSK from the KMS simulator by attested Decrypt. Its NSM is the
// test process (the "hypervisor"), over IPC: the image (PCR0) is decided there, not here.
// Configuration: one JSON argument. Tells the test { ready: pcr0 } once it serves, and
// { step: { workflowId, activity, seq, phase: 'opened' | 'done' } } for every step it runs.
// `{ killOnNextStep: file }` from the test: the next step writes its binding to `file` and the
// process SIGKILLs itself while the step runs (a crash mid-step, at a known point).
import { writeFileSync } from 'node:fs';
import { fromParentCredentials, getTrustedSessionKey } from 'nitro-enclave-sdk';
import { connectSocket } from 'nitro-enclave-sdk/vsock';
import { serveSealedActivities } from 'nitro-enclave-sdk/workflow';
import { handlers } from '../../../examples/confidential-workflow/enclave/app.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const config = JSON.parse(process.argv[2]);

let nextNsmId = 1;
const nsmWaiting = new Map();
let killFile;
process.on('message', (m) => {
  if (m.nsmReply) {
    nsmWaiting.get(m.nsmReply)?.(new Uint8Array(Buffer.from(m.message, 'base64')));
    nsmWaiting.delete(m.nsmReply);
  }
  if (m.killOnNextStep) killFile = m.killOnNextStep;
});
const nsm = {
  request: (message) =>
    new Promise((resolve) => {
      const id = nextNsmId++;
      nsmWaiting.set(id, resolve);
      process.send({ nsm: id, message: Buffer.from(message).toString('base64') });
    }),
};

const tsk = await getTrustedSessionKey({
  ciphertextBlob: new Uint8Array(Buffer.from(config.blob, 'base64')),
  keyId: config.keyArn,
  region: config.region,
  credentials: fromParentCredentials({ address: { family: 'unix', path: config.credentialsPath } }),
  transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: config.kmsProxyPath }) },
  nsm,
  attestationTrustAnchors: [new Uint8Array(Buffer.from(config.trustAnchor, 'base64'))],
  tlsCa: config.tlsCa,
}).catch((err) => {
  process.send({ failed: `${err.code ?? err.name}: ${err.message}` });
  process.exit(3);
});

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
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
        await sleep(config.stepDelayMs, ctx.signal);
        const out = await h.run(input, ctx);
        process.send({ step: { ...step, phase: 'done' } });
        return out;
      },
    },
  ]),
);

const server = serveSealedActivities({ listen: { family: 'unix', path: config.listenPath }, key: tsk, handlers: slowed });
process.send({ ready: tsk.metadata.pcr0 });
process.once('SIGTERM', async () => {
  await server.close();
  tsk.dispose();
  process.exit(0);
});
