// The attestation bench in every runtime of the test harness (test/runtimes/harness.ts):
// each runtime's cold verification against its own WebCrypto floor (5 sequential P-384
// verifies), measured in the same run. Goal: cold <= 1.5 x floor in each runtime.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { fmt, line } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));

async function loadHarness() {
  // Inside the project, so the bundle's bare imports (esbuild, playwright-core) resolve from node_modules.
  const cache = resolve(here, '../node_modules/.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, 'nes-bench-harness-'));
  const outfile = join(dir, 'harness.mjs');
  await build({ entryPoints: [resolve(here, '../test/runtimes/harness.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile, logLevel: 'silent' });
  const harness = await import(pathToFileURL(outfile).href);
  return { harness, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** workerd: time whole requests from outside (its clock does not advance while code runs). */
async function outside(session, base, { rounds = 15, n = 40 } = {}) {
  const names = ['noop', 'floor1', 'floor5', 'cold', 'warm'];
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = 0; r < rounds + 2; r++) {
    for (const op of names) {
      const t = performance.now();
      await session.call({ ...base, mode: 'op', op, n });
      if (r >= 2) samples[op].push(performance.now() - t);
    }
  }
  const median = (k) => samples[k].sort((a, b) => a - b)[Math.floor(samples[k].length / 2)];
  const noop = median('noop');
  return Object.fromEntries(names.slice(1).map((k) => [k, (median(k) - noop) / n]));
}

export async function benchRuntimes({ doc, currentDateMs }) {
  console.log('\n## Attestation verification in each runtime (same document; floor = that runtime\'s WebCrypto, 5 sequential P-384 verifies)');
  const { harness, cleanup } = await loadHarness();
  const script = await harness.bundleScript('bench/attestation-script.ts');
  const base = { doc: Buffer.from(doc).toString('base64'), currentDateMs };
  const results = {};
  try {
    for (const runtime of harness.RUNTIMES) {
      const missing = runtime.missing();
      if (missing) {
        console.log(`${runtime.name}: SKIPPED (${missing})`);
        continue;
      }
      const session = await runtime.session(script);
      let r;
      try {
        r = runtime.name === 'workerd' ? await outside(session, base) : await session.call({ ...base, mode: 'inner', rounds: 300 });
      } finally {
        await session.close();
      }
      results[runtime.name] = r;
      const how = runtime.name === 'workerd' ? ' (timed per request from outside)' : '';
      line(`${runtime.name}: floor, 5 sequential WebCrypto verifies${how}`, fmt(r.floor5));
      line(`${runtime.name}: cold (fresh verifier)`, fmt(r.cold), `${(r.cold / r.floor5).toFixed(2)} x floor (goal <= 1.5)`);
      line(`${runtime.name}: warm (CA chain cached)`, fmt(r.warm), `${(r.warm / r.floor1).toFixed(2)} x one verify (${fmt(r.floor1)})`);
    }
  } finally {
    rmSync(script.dir, { recursive: true, force: true });
    cleanup();
  }
  return results;
}
