// issue 13 §1/§3: one verifier, five runtimes. The corpus runs in Node first (checked against
// the outcome each case names), then unchanged in Deno, Bun, workerd and Chromium, whose
// per-case outcomes must equal Node's.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesDir } from '../helpers/fixtures.js';
import { buildCorpus, type ExpectedCase } from './corpus.js';
import { describeRuntime } from './describe-runtime.js';
import { bundleScript, RUNTIMES, type Script } from './harness.js';

const TIMEOUT = 120_000;

describe('attestation corpus in every runtime', () => {
  let script: Script;
  let corpus: ExpectedCase[];
  let reference: Record<string, string> | undefined;

  beforeAll(async () => {
    corpus = buildCorpus();
    script = await bundleScript('test/runtimes/corpus-script.ts');
  }, TIMEOUT);
  afterAll(() => {
    if (script) rmSync(script.dir, { recursive: true, force: true });
  });

  const input = () => ({ cases: corpus.map(({ expect: _ignored, ...c }) => c), warm: true });

  /** Node's outcomes, computed once (in a Node child process running the same bundle). */
  async function nodeOutcomes(): Promise<Record<string, string>> {
    reference ??= (await RUNTIMES[0]!.run(script, input())) as Record<string, string>;
    return reference;
  }

  describeRuntime(RUNTIMES[0]!, () => {
    it(
      'gives every case the outcome it names, cold and on a warm verifier',
      async () => {
        const out = await nodeOutcomes();
        // Without ../shared/fixtures only the simulated-enclave cases exist (the fixture tests say so loudly).
        expect(corpus.length).toBeGreaterThan(fixturesDir ? 80 : 6);
        for (const c of corpus) {
          expect(out[c.name], c.name).toBeDefined();
          expect(out[c.name]!.startsWith(c.expect), `${c.name}: ${out[c.name]}`).toBe(true);
          if (c.kind === 'verify') expect(out[`warm: ${c.name}`], `warm: ${c.name}`).toBe(out[c.name]);
        }
        // The corpus exercises both verdicts and every layer.
        const verdicts = new Set(Object.values(out).map((o) => o.split(' ')[0]));
        const fromFixtures = fixturesDir ? ['ERR_ATTESTATION_CHAIN_INVALID', 'ERR_ATTESTATION_MALFORMED', 'ERR_ATTESTATION_UNSUPPORTED_ALGORITHM'] : [];
        for (const code of ['ok', 'ERR_ATTESTATION_SIGNATURE_INVALID', 'ERR_ATTESTATION_UNTRUSTED_ROOT', 'ERR_ATTESTATION_CERT_EXPIRED', 'ERR_ATTESTATION_DEBUG_MODE', ...fromFixtures]) {
          expect(verdicts, code).toContain(code);
        }
      },
      TIMEOUT,
    );
  });

  for (const runtime of RUNTIMES.slice(1)) {
    describeRuntime(runtime, () => {
      it(
        'ends every case exactly as Node does (real AWS documents verify at their own time)',
        async () => {
          const [theirs, ours] = [(await runtime.run(script, input())) as Record<string, string>, await nodeOutcomes()];
          const differing = Object.keys(ours).filter((name) => theirs[name] !== ours[name]).map((name) => `${name}: node=${ours[name]} ${runtime.name}=${theirs[name]}`);
          expect(differing).toEqual([]);
          expect(Object.keys(theirs).sort()).toEqual(Object.keys(ours).sort());
          expect(Object.values(theirs).filter((o) => o.startsWith('ok ')).length).toBeGreaterThan(fixturesDir ? 20 : 2);
        },
        TIMEOUT,
      );
    });
  }
});
