// The parent's Temporal worker: it runs the workflow code (which only moves sealed bytes) and the
// agent activities, which relay each step's sealed state to the enclave and its sealed answer back.
// It holds no key.
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { createSealedActivities } from 'nitro-enclave-sdk/workflow/parent';

export const AGENT_NAMES = ['research', 'analysis', 'report'];
export const workflowsPath = fileURLToPath(new URL('../workflows/pipeline.ts', import.meta.url));

/**
 * Creates the worker. `connection` is a `NativeConnection` to the Temporal frontend; `enclave` the
 * enclave's sealed-activity listener (vsock on the parent; an AF_UNIX stand-in in tests).
 * `workflowBundle` skips webpack when the workflow code is already bundled.
 */
export async function createParentWorker({ connection, namespace = 'default', taskQueue, enclave, workflowBundle, maxCachedWorkflows, timeoutMs = 60_000 }) {
  // Each activity takes (state, seq): the state is a top-level argument, so it stays binary/plain in history.
  const activities = createSealedActivities({ address: enclave, names: AGENT_NAMES, timeoutMs });
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    activities,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath }),
    ...(maxCachedWorkflows === undefined ? {} : { maxCachedWorkflows }),
  });
}
