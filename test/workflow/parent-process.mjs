// The parent instance as its own process: it has the Temporal activities and the sealed bytes,
// never a key. Run by parent-process.test.ts with the built package.
import { MockActivityEnvironment } from '@temporalio/testing';
import { createSealedActivities, peekStateBinding } from 'nitro-enclave-sdk/workflow/parent';

const { ADDRESS_PATH, WORKFLOW_ID, STATE_B64 } = process.env;
const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const activities = createSealedActivities({ address: { family: 'unix', path: ADDRESS_PATH }, names: ['research', 'analysis'] });
const env = new MockActivityEnvironment({ workflowExecution: { workflowId: WORKFLOW_ID, runId: 'r' } }, { logger: quiet });
let state = new Uint8Array(Buffer.from(STATE_B64, 'base64'));
const seen = [];
for (const [seq, name] of ['research', 'analysis'].entries()) {
  const b = peekStateBinding(state); // routing data only: unauthenticated, no key needed
  seen.push(`${b.activity}#${b.seq} from ${b.producer}`);
  state = await env.run(activities[name], state, seq);
}
let refused;
try {
  await env.run(activities.research, new Uint8Array(Buffer.from(STATE_B64, 'base64')).subarray(0, 40), 0);
} catch (err) {
  refused = `${err.type}:${err.nonRetryable}`;
}
process.stdout.write(JSON.stringify({ seen, refused, result: Buffer.from(state).toString('base64') }));
process.exit(0);
