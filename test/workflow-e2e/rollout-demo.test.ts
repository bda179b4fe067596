// `npm run demo:rollout`, run through its main function (with the workflow bundle prebuilt). The
// CLI steps spawn dist/cli/bin.js: run `npm run build` first.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { expect, it } from 'vitest';
// The example imports 'nitro-enclave-sdk' (the built package, by self-reference), as a user's app would.
// @ts-expect-error: plain ESM example without type declarations
import { runRolloutDemo } from '../../examples/rollout/demo.mjs';
import { cachedWorkflowBundle } from './helpers/bundle.js';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'confidential-workflow');
Runtime.install({ logger: new DefaultLogger('ERROR') });

it('the rollout demo: v1 → v1+v2 → v2 under a running workflow, remove refused then forced, the audit by image', async () => {
  const workflowBundle = await cachedWorkflowBundle(join(exampleDir, 'workflows', 'pipeline.ts'), [join(exampleDir, 'workflows')]);
  const lines: string[] = [];
  const result = await runRolloutDemo({ log: (line: string) => lines.push(line), workflowBundle });
  const out = lines.join('\n');
  expect(result.failures).toEqual([]);
  expect(result.ok).toBe(true);
  // the workflow ran through the rollout: step 1 on v1, step 2 started on v1 and retried on v2
  expect(result.steps).toEqual(['v1:research#1', 'v1:analysis#2', 'v2:analysis#2', 'v2:report#3']);
  expect(result.report.title).toBe('Report: Should Acme acquire Globex (codename BLUEHERON)?');
  // the CLI's own output, as printed
  expect(result.outputs.added.code).toBe(0);
  expect(out).toMatch(/\| ✔ admitted PCR0 \S+\n {2}\| {3}PutKeyPolicy request /);
  expect(result.outputs.refused.code).toBe(5);
  expect(out).toMatch(/\| nitro-enclave rollout remove: refused: PCR0 \S+ received key material at \S+, within --drain-window 1h/);
  expect(out).toContain('The demo cannot wait an hour for v1 to drain');
  expect(result.outputs.forced.code).toBe(0);
  expect(out).toMatch(/\| warning: --force: PCR0 \S+ was used at \S+, within the drain window/);
  expect(out).toMatch(/a v1 enclave started now gets no TSK \(ERR_KMS_ACCESS_DENIED\)/);
  expect(result.outputs.audit.code).toBe(4);
  expect(out).toMatch(/\| {3}PCR0 \S+ {2}\(NOT admitted now\): 2 release\(s\)/);
  expect(out).toMatch(/\| {3}PCR0 \S+: 1 release\(s\)/);
  expect(out).toMatch(/\| acknowledged: POLICY_CHANGED \S+, POLICY_CHANGED \S+\n/);
  expect(out).toMatch(/\| {3}IMAGE_NOT_ADMITTED /);
  for (const title of ['1. Image v1', '2. rollout add', '3. Enclave v2 up', '4. rollout remove', '5. nitro-enclave audit']) expect(out).toContain(`=== ${title}`);
  expect(out).toContain('✔ rollout demo: every step did what it should');
  expect(out).not.toContain('✘ rollout demo');
}, 60_000);
