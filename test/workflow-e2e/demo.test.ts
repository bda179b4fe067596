// `npm run demo:workflow`, run through its main function (with the workflow bundle prebuilt).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { expect, it } from 'vitest';
// The example imports 'nitro-enclave-sdk' (the built package, by self-reference), as a user's app would.
// @ts-expect-error: plain ESM example without type declarations
import { demoBrief, runDemo } from '../../examples/confidential-workflow/demo.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { agents } from '../../examples/confidential-workflow/enclave/agents.mjs';
import { cachedWorkflowBundle } from './helpers/bundle.js';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'confidential-workflow');
Runtime.install({ logger: new DefaultLogger('ERROR') });

it('the workflow demo says it falls back to the stand-in, shows ciphertext at the server and the report decoded in the enclave', async () => {
  const workflowBundle = await cachedWorkflowBundle(join(exampleDir, 'workflows', 'pipeline.ts'), [join(exampleDir, 'workflows')]);
  const lines: string[] = [];
  // Port 1 on loopback: nothing answers there, as when TEMPORAL_ADDRESS names a server that is down.
  const result = await runDemo({ log: (line: string) => lines.push(line), workflowBundle, temporalAddress: '127.0.0.1:1' });
  const out = lines.join('\n');
  expect(result.server).toBe('stand-in');
  expect(out).toContain('no server answers at 127.0.0.1:1, so using the in-process WorkflowService stand-in');
  expect(out).toContain('not a Temporal server');
  // the server's copy: every payload is a sealed state, and none of the brief or report is readable
  expect(result.leaked).toEqual([]);
  for (const needle of [demoBrief.question, ...demoBrief.sources, 'supported by independent sources']) {
    expect(Buffer.from(result.historyBytes).includes(Buffer.from(needle)), needle).toBe(false);
  }
  expect(out).toMatch(/WORKFLOW_EXECUTION_STARTED +\d+ bytes, sealed for research #1 from client/);
  expect(out).toMatch(/WORKFLOW_EXECUTION_COMPLETED +\d+ bytes, sealed for client #4 from report/);
  // inside the enclave: the report, as the agents made it
  const expected = agents.report(agents.analysis(agents.research(demoBrief)));
  expect(result.report).toEqual(expected);
  expect(out).toContain(`  ${expected.title}`);
  expect(out).toContain('→ no plaintext');
}, 60_000);
