// The parent's Temporal worker for the browser pipeline: the agents relay sealed states to the
// enclave's sealed-activity server; intake and deliver relay the browser's sealed request and the
// sealed report state to the enclave's gateway port. It holds no key.
import { fileURLToPath } from 'node:url';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { createSealedActivities } from 'nitro-enclave-sdk/workflow/parent';

export const AGENT_NAMES = ['research', 'analysis', 'report'];
export const workflowsPath = fileURLToPath(new URL('../workflows/browser-pipeline.ts', import.meta.url));

const toBase64 = (bytes) => Buffer.from(bytes).toString('base64');

/** intake and deliver as Temporal activities over the enclave link (parent/enclave-link.mjs). */
export function createGatewayActivities(link) {
  async function relay(op, field, bytes) {
    const workflowId = Context.current().info.workflowExecution.workflowId;
    const answer = await link.request({ op, workflowId, [field]: toBase64(bytes) });
    // A refusal is the enclave's verdict on these bytes: retrying cannot change it.
    if (!answer.ok) throw ApplicationFailure.nonRetryable(`the enclave refused ${op}: ${answer.error}`, answer.error);
    return new Uint8Array(Buffer.from(op === 'intake' ? answer.state : answer.sealed, 'base64'));
  }
  return {
    intake: (sealedRequest) => relay('intake', 'sealed', sealedRequest),
    deliver: (state) => relay('deliver', 'state', state),
  };
}

/** The worker; `workflowBundle` skips webpack, `maxCachedWorkflows: 0` for the Temporal stand-in. */
export async function createBrowserWorker({ connection, namespace = 'default', taskQueue, agents, link, workflowBundle, maxCachedWorkflows }) {
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    activities: { ...createSealedActivities({ address: agents, names: AGENT_NAMES, timeoutMs: 60_000 }), ...createGatewayActivities(link) },
    ...(workflowBundle ? { workflowBundle } : { workflowsPath }),
    ...(maxCachedWorkflows === undefined ? {} : { maxCachedWorkflows }),
  });
}
