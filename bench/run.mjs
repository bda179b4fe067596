// `npm run bench`: prints figures and ratios against floors measured in the same run.
//
//   npm run bench                          every part, each in a fresh process
//   npm run bench -- codec envelope        only these parts (names below), in that order
//   npm run bench -- --markdown            also writes docs/performance.md from this run
//   node bench/run.mjs codec               the same without rebuilding dist/ (run `npm run build` first)
//
// Each part runs in its own Node process: after the other parts (the KMS simulator, TLS,
// thousands of allocations) the allocator's state alone moved the 64 KiB envelope cases 4–6 x,
// floor included, which measures the heap's history, not the code. A fresh process is also what
// an independent run of one figure measures. The goals each part judged are summarised at the end.
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describeGoal } from './lib.mjs';
import { captureMarkdown } from './markdown.mjs';

const PARTS = {
  attestation: async () => (await import('./attestation.mjs')).benchAttestation(),
  runtimes: async () => (await import('./attestation.mjs')).benchAttestationRuntimes(),
  tsk: async () => (await import('./tsk.mjs')).benchTsk(),
  envelope: async () => (await import('./envelope.mjs')).benchEnvelope(),
  codec: async () => (await import('./codec.mjs')).benchCodec(),
  workflow: async () => (await import('./workflow.mjs')).benchWorkflow(),
  keygen: async () => (await import('./keygen.mjs')).benchKeygen(),
  relay: async () => (await import('./relay.mjs')).benchRelay(),
  deps: async () => (await import('./deps.mjs')).benchDeps(),
  seal: async () => (await import('./seal.mjs')).benchSeal(),
  tls: async () => (await import('./tls.mjs')).benchTls(),
};

if (process.env.NES_BENCH_CHILD) {
  await PARTS[process.env.NES_BENCH_CHILD]();
  (await import('./lib.mjs')).reportGoals();
  process.exit(0);
}

const args = process.argv.slice(2);
const unknown = args.filter((a) => !a.startsWith('--') && !(a in PARTS));
if (unknown.length) {
  console.error(`unknown part(s) ${unknown.join(', ')}; parts: ${Object.keys(PARTS).join(', ')}`);
  process.exit(2);
}
const selected = args.filter((a) => a in PARTS);
const parts = selected.length ? selected : Object.keys(PARTS);
const finish = args.includes('--markdown') ? captureMarkdown(new URL('../docs/performance.md', import.meta.url)) : () => {};

/** Runs one part in a fresh process, echoing its output; resolves with the goals it judged. */
function runPart(name) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], { env: { ...process.env, NES_BENCH_CHILD: name }, stdio: ['ignore', 'pipe', 'inherit'] });
    let goals = [];
    createInterface({ input: child.stdout }).on('line', (text) => {
      if (text.startsWith('@@goals ')) goals = JSON.parse(text.slice(8));
      else console.log(text);
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(goals) : reject(new Error(`bench part ${name} exited with ${code}`))));
  });
}

console.log(`# nitro-enclave-sdk bench — node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`);
console.log(`load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}; parts: ${parts.join(', ')}`);
const judged = [];
for (const name of parts) judged.push(...(await runPart(name)));
if (judged.length) {
  console.log('\n## Goals judged in this run (ratio: median over the repetitions, [min–max])');
  for (const g of judged) {
    const q = g.ratio;
    console.log(`${g.name.padEnd(58)} ${q.median.toFixed(2).padStart(6)} [${q.min.toFixed(2)}–${q.max.toFixed(2)}] ±${(g.pm * 100).toFixed(0)} %  goal ${describeGoal(g.goal)}: ${g.verdict}`);
  }
}
console.log(`load average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
finish();
