// Workflow code for the codec tests (bundled by the worker's webpack bundler).
import { proxyActivities } from '@temporalio/workflow';

export interface ConfidentialActivities {
  diagnose(record: { patient: string }): Promise<{ verdict: string }>;
  explode(secret: string): Promise<string>;
}

const acts = proxyActivities<ConfidentialActivities>({ startToCloseTimeout: '20s', retry: { maximumAttempts: 1 } });

/** Input → activity input → activity result → workflow result, each carrying its own marker. */
export async function diagnosis(input: { patient: string }): Promise<string> {
  const { verdict } = await acts.diagnose({ patient: `${input.patient} act-input-9c1e` });
  return `${verdict} wf-result-2a7b`;
}

/** An activity that throws: its message and stack end up in the history as a failure. */
export async function failing(secret: string): Promise<string> {
  return acts.explode(secret);
}
