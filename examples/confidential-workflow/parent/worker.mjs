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
 * enclave's sealed-activity listener (vsock on the parent; an AF_UNIX stand-in in tests), or
 * `enclaves` one per agent name (the two-enclave variant).
 * `workflowBundle` skips webpack when the workflow code is already bundled.
 *
 * While its enclave is down (restart, crash, new image) the worker takes no activity task (the
 * enclave slot supplier), so the other replicas run them or they wait in the task queue, and no
 * retry attempt is spent on an enclave that cannot answer (docs/operations.md).
 */
export async function createParentWorker({ connection, namespace = 'default', taskQueue, enclave, enclaves, workflowBundle, maxCachedWorkflows, timeoutMs = 60_000, identity, maxConcurrentActivities = 100 }) {
  // One enclave serves every agent, or (two-enclave variant) `enclaves` maps each agent to its enclave.
  const addressOf = (name) => (enclaves ? enclaves[name] : enclave);
  if (AGENT_NAMES.some((name) => !addressOf(name))) throw new TypeError('give enclave, or enclaves with an address for every agent');
  const clients = new Map();
  const activities = {};
  for (const name of AGENT_NAMES) {
    const address = addressOf(name);
    const key = JSON.stringify(address);
    if (!clients.has(key)) clients.set(key, createSealedActivityClient({ address }));
    // Each activity takes (state, seq): the state is a top-level argument, so it stays binary/plain in history.
    Object.assign(activities, createSealedActivities({ client: clients.get(key), names: [name], timeoutMs }));
  }
  // The slot supplier follows one enclave; with several, activity slots are a fixed pool.
  const [client] = clients.values();
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    activities,
    tuner: {
      workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 100 },
      activityTaskSlotSupplier: clients.size === 1 ? createEnclaveSlotSupplier({ client, maxSlots: maxConcurrentActivities }) : { type: 'fixed-size', numSlots: maxConcurrentActivities },
      localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
    },
    ...(identity ? { identity } : {}),
    ...(workflowBundle ? { workflowBundle } : { workflowsPath }),
    ...(maxCachedWorkflows === undefined ? {} : { maxCachedWorkflows }),
  });
}
