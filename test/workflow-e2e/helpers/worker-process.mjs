// A parent's Temporal worker in its own process, so a test can kill -9 it. Configuration: one JSON
// argument. `kind: 'plain'` runs the stand-in tests' plain activities; `kind: 'sealed'` is the
// example's parent worker (examples/confidential-workflow/parent/worker.mjs) relaying to the enclave
// at `enclavePath`: sealed activities and the enclave slot supplier.
// Tells the test `{ ready: identity }` over IPC once it polls; exits on SIGTERM after a clean shutdown.
// With `waitForStart`, it loads its code, says { warm: true } and waits for `{ start: true, config }`
// (merged into its configuration) before it connects: a replacement forked ahead of time.
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';

const config = JSON.parse(process.argv[2]);
const parentWorker = config.kind === 'sealed' ? await import('../../../examples/confidential-workflow/parent/worker.mjs') : undefined;
Runtime.install({ logger: new DefaultLogger('ERROR') });
if (config.waitForStart) {
  await new Promise((resolve) => {
    process.on('message', function started(m) {
      if (!m.start) return;
      process.off('message', started);
      Object.assign(config, m.config);
      resolve();
    });
    process.send({ warm: true });
  });
}
const plainOptions = {
  activities: {
    research: async (topic) => `notes on ${topic}`,
    analyse: async (notes, angle) => `${angle} of ${notes}`,
  },
};

const connection = await NativeConnection.connect({ address: config.address });
const workflowBundle = { codePath: config.bundlePath };
// 'sealed': the example's parent worker, as deployed (createParentWorker: sealed activities and the enclave slot supplier).
const worker =
  config.kind === 'sealed'
    ? await parentWorker.createParentWorker({ connection, taskQueue: config.taskQueue, enclave: { family: 'unix', path: config.enclavePath }, workflowBundle, maxCachedWorkflows: 0, identity: config.identity })
    : await Worker.create({ connection, taskQueue: config.taskQueue, identity: config.identity, workflowBundle, maxCachedWorkflows: 0, ...plainOptions });
process.once('SIGTERM', () => worker.shutdown());
const running = worker.run();
process.send?.({ ready: config.identity });
await running;
await connection.close();
process.exit(0);
