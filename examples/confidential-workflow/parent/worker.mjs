// The parent's Temporal worker: it runs the workflow code (which only moves sealed bytes) and the
// agent activities, which relay each step's sealed state to the enclave and its sealed answer back.
// It holds no key.
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { createEnclaveSlotSupplier, createSealedActivities, createSealedActivityClient } from 'nitro-enclave-sdk/workflow/parent';

export const AGENT_NAMES = ['research', 'analysis', 'report'];
export const workflowsPath = fileURLToPath(new URL('../workflows/pipeline.ts', import.meta.url));

/**
 * Creates the worker. `connection` is a `NativeConnection` to the Temporal frontend; `enclave` the
 * enclave's sealed-activity listener (vsock on the parent; an AF_UNIX stand-in in tests).
 * `workflowBundle` skips webpack when the workflow code is already bundled.
 *
 * While its enclave is down (restart, crash, new image) the worker takes no activity task (the
 * enclave slot supplier), so the other replicas run them or they wait in the task queue, and no
 * retry attempt is spent on an enclave that cannot answer (docs/operations.md).
 */
export async function createParentWorker({ connection, namespace = 'default', taskQueue, enclave, workflowBundle, maxCachedWorkflows, timeoutMs = 60_000, identity, maxConcurrentActivities = 100 }) {
  const client = createSealedActivityClient({ address: enclave });
  // Each activity takes (state, seq): the state is a top-level argument, so it stays binary/plain in history.
  const activities = createSealedActivities({ client, names: AGENT_NAMES, timeoutMs });
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    activities,
    tuner: {
      workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 100 },
      activityTaskSlotSupplier: createEnclaveSlotSupplier({ client, maxSlots: maxConcurrentActivities }),
      localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
    },
    ...(identity ? { identity } : {}),
    ...(workflowBundle ? { workflowBundle } : { workflowsPath }),
    ...(maxCachedWorkflows === undefined ? {} : { maxCachedWorkflows }),
  });
}
