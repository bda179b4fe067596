// Runs inside the enclave: the workflow's input is sealed here, before it reaches Temporal, and the
// final state is opened here. Temporal, the parent and its worker only ever hold the sealed bytes.
import { openState, sealState } from 'nitro-enclave-sdk/workflow';
import { fromBytes, toBytes } from './agents.mjs';
import { FINAL_STEP, FIRST_STEP } from './steps.mjs';

/**
 * Seals `brief` for the pipeline's first step, runs the workflow with the Temporal `client` (connected
 * through the parent), and opens the sealed report. `key` is the TSK (or a key ring).
 */
export async function runConfidentialWorkflow({ client, key, brief, workflowId, taskQueue }) {
  const plaintext = toBytes(brief);
  const sealedInput = sealState(key, plaintext, { workflowId, ...FIRST_STEP, producer: 'client' });
  plaintext.fill(0);
  const sealedReport = await client.workflow.execute('confidentialPipeline', { workflowId, taskQueue, args: [sealedInput] });
  const opened = openState(key, sealedReport, { workflowId, ...FINAL_STEP });
  try {
    return { report: fromBytes(opened.plaintext), sealedInput, sealedReport };
  } finally {
    opened.plaintext.fill(0);
  }
}
