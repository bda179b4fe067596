// The browser variant of the confidential pipeline: intake → research → analysis → report → deliver.
// It runs in Temporal's sandbox on the parent's worker and only moves sealed bytes: the browser's
// HPKE-sealed request in, the TSK-sealed states between the agents, the HPKE-sealed response out.
import { proxyActivities } from '@temporalio/workflow';

/** The enclave's gateway operations, relayed by the parent (they take and return sealed bytes). */
export interface GatewayActivities {
  intake(sealedRequest: Uint8Array): Promise<Uint8Array>;
  deliver(state: Uint8Array): Promise<Uint8Array>;
}

export interface AgentActivities {
  research(state: Uint8Array, seq: number): Promise<Uint8Array>;
  analysis(state: Uint8Array, seq: number): Promise<Uint8Array>;
  report(state: Uint8Array, seq: number): Promise<Uint8Array>;
}

// The request opens once (the enclave refuses a replay), so a second attempt could only fail.
const gateway = proxyActivities<GatewayActivities>({ startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 1 } });
const agents = proxyActivities<AgentActivities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '200 ms', maximumAttempts: 5 },
});

/** The input is the browser's sealed request; the result is sealed to the browser's key. */
export async function browserPipeline(sealedRequest: Uint8Array): Promise<Uint8Array> {
  const brief = await gateway.intake(sealedRequest);
  const findings = await agents.research(brief, 1);
  const assessment = await agents.analysis(findings, 2);
  const report = await agents.report(assessment, 3);
  return gateway.deliver(report);
}
