// The pipeline's steps as the enclave sees them: who may feed each agent and whom its result is for.
// Part of the image (measured in PCR0), so the host cannot reroute states. Each state is sealed for
// (workflow id, consuming activity, sequence number, producing agent).

/** The workflow's input: sealed by the starter ("client") for research, step 1. */
export const FIRST_STEP = { activity: 'research', seq: 1 };
/** The pipeline's output: sealed by report for the client, step 4. */
export const FINAL_STEP = { activity: 'client', seq: 4, producer: 'report' };
/** For serveSealedActivities: accepted producer and next consumer of each agent. */
export const ROUTES = {
  research: { from: 'client', next: 'analysis' },
  analysis: { from: 'research', next: 'report' },
  report: { from: 'analysis', next: 'client' },
};
/**
 * Two-enclave variant (two-enclaves.mjs): results that go from one image to the other over attested
 * TLS instead of through Temporal, by producing agent. The receiver accepts exactly these.
 */
export const HANDOFFS = {
  analysis: { activity: 'report', producer: 'analysis' },
};
