// Runs inside the enclave: the workflow's input is sealed here, before it reaches Temporal, and the
// final state is opened here. Temporal, the parent and its worker only ever hold the sealed bytes.
import { newChainId, openState, sealState } from 'nitro-enclave-sdk/workflow';
import { fromBytes, toBytes } from './agents.mjs';
import { FINAL_STEP, FIRST_STEP } from './steps.mjs';

/**
 * Seals `brief` for the pipeline's first step, runs the workflow with the Temporal `client` (connected
 * through the parent), and opens the sealed report. `key` is the TSK (or a key ring).
 *
 * Each run gets a fresh chain id: the enclave copies it into every state of the run, and the report
 * must carry it. Temporal reuses workflow ids (a new run once one closes, cron, continue-as-new), so
 * without it the host could hand this run the report of an earlier run of the same workflow id.
 */
export async function runConfidentialWorkflow({ client, key, brief, workflowId, taskQueue, chainId = newChainId() }) {
  const plaintext = toBytes(brief);
  const sealedInput = sealState(key, plaintext, { workflowId, chainId, ...FIRST_STEP, producer: 'client' });
  plaintext.fill(0);
  const sealedReport = await client.workflow.execute('confidentialPipeline', { workflowId, taskQueue, args: [sealedInput] });
  const opened = openState(key, sealedReport, { workflowId, chainId, ...FINAL_STEP });
  try {
    return { report: fromBytes(opened.plaintext), chainId, sealedInput, sealedReport };
  } finally {
    opened.plaintext.fill(0);
  }
}
