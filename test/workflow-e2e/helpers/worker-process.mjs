// A parent's Temporal worker in its own process, so a test can kill -9 it. Configuration: one JSON
// argument. `kind: 'plain'` runs the stand-in tests' plain activities; `kind: 'sealed'` is a
// confidential-workflow parent: sealed activities relaying to the enclave at `enclavePath`, with the
// enclave slot supplier (no activity task is taken while that enclave is unreachable).
// Tells the test `{ ready: identity }` over IPC once it polls; exits on SIGTERM after a clean shutdown.
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';

const config = JSON.parse(process.argv[2]);
Runtime.install({ logger: new DefaultLogger('ERROR') });

async function sealedOptions() {
  const { createEnclaveSlotSupplier, createSealedActivities, createSealedActivityClient } = await import('nitro-enclave-sdk/workflow/parent');
  const client = createSealedActivityClient({ address: { family: 'unix', path: config.enclavePath } });
  return {
    activities: createSealedActivities({ client, names: ['research', 'analysis', 'report'], timeoutMs: 60_000 }),
    tuner: {
      workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 20 },
      activityTaskSlotSupplier: createEnclaveSlotSupplier({ client, maxSlots: 20, maxRetryIntervalMs: 250 }),
      localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
    },
  };
}

const plainOptions = {
  activities: {
    research: async (topic) => `notes on ${topic}`,
    analyse: async (notes, angle) => `${angle} of ${notes}`,
  },
};

const connection = await NativeConnection.connect({ address: config.address });
const worker = await Worker.create({
  connection,
  taskQueue: config.taskQueue,
  identity: config.identity,
  workflowBundle: { codePath: config.bundlePath },
  maxCachedWorkflows: 0,
  ...(config.kind === 'sealed' ? await sealedOptions() : plainOptions),
});
process.once('SIGTERM', () => worker.shutdown());
const running = worker.run();
process.send?.({ ready: config.identity });
await running;
await connection.close();
process.exit(0);
