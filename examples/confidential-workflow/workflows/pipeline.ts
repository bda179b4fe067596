// The workflow: research → analysis → report. It runs in Temporal's workflow sandbox on the parent's
// worker and only ever holds sealed bytes: it orders the steps, Temporal persists and retries them,
// and neither can read or alter what the agents exchange.
import { proxyActivities } from '@temporalio/workflow';

/**
 * Each agent step: the sealed state and the step number it is sealed for, in; the next sealed state,
 * out (opened, run and re-sealed inside the enclave). The state is a top-level argument so Temporal's
 * default converter stores it as `binary/plain` bytes (inside an object it would go through JSON).
 */
export interface AgentActivities {
  research(state: Uint8Array, seq: number): Promise<Uint8Array>;
  analysis(state: Uint8Array, seq: number): Promise<Uint8Array>;
  report(state: Uint8Array, seq: number): Promise<Uint8Array>;
}

const agents = proxyActivities<AgentActivities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '200 ms', maximumAttempts: 5 },
});

/** Runs the three agents in order; the input and the result are sealed states. */
export async function confidentialPipeline(sealedBrief: Uint8Array): Promise<Uint8Array> {
  const findings = await agents.research(sealedBrief, 1);
  const assessment = await agents.analysis(findings, 2);
  return agents.report(assessment, 3);
}
