// Shared helpers for `npm run bench`. Cases are measured interleaved (one sample of each per
// round, the order rotated every round), so a noisy neighbour slows the floor and the case alike
// and the ratios stay meaningful on a shared 2-core machine. Every figure is measured in several
// repetitions: a row prints the median over the repetitions and their spread (min–max), never
// one number, and a goal is judged on every repetition, not on a lucky one.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';

/**
 * One repetition: `rounds` interleaved samples of every case after `warmup` untimed ones; the median
 * of each. `before`, when given, runs untimed before every sample of every case alike (see {@link isolate}).
 */
export async function interleaved(cases, { rounds = 300, warmup = 30, before, cpu = false } = {}) {
  const names = Object.keys(cases);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  const cpuSamples = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < warmup + rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      // Rotated so that no case always runs right after the same neighbour (caches, GC debt).
      const name = names[(k + r) % names.length];
      if (before) await before();
      const c = cpu ? process.cpuUsage() : null;
      const t = performance.now();
      await cases[name](r);
      const elapsed = performance.now() - t;
      if (r < warmup) continue;
      samples[name].push(elapsed);
      if (c) {
        const used = process.cpuUsage(c);
        cpuSamples[name].push((used.user + used.system) / 1000);
      }
    }
  }
  const mid = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return Object.fromEntries(
    names.map((n) => {
      const s = samples[n].sort((a, b) => a - b);
      return [n, { median: s[Math.floor(s.length / 2)], p90: s[Math.floor(s.length * 0.9)], ...(cpu ? { cpuMedian: mid(cpuSamples[n]) } : {}) }];
    }),
  );
}

/**
 * `reps` repetitions of {@link interleaved} (warm-up in each). Returns, per case, the list of
 * per-repetition medians; {@link spread} and {@link ratio} summarise them.
 */
export async function repeated(cases, { reps = 5, rounds = 100, warmup = 10, prime = warmup * 3, before, cpu = false } = {}) {
  const out = Object.fromEntries(Object.keys(cases).map((n) => [n, []]));
  const cpuOut = Object.fromEntries(Object.keys(cases).map((n) => [n, []]));
  // Untimed first, so that no repetition measures the JIT compiling the case (the first one did).
  for (let i = 0; i < prime; i++) for (const run of Object.values(cases)) await run(i);
  for (let i = 0; i < reps; i++) {
    const r = await interleaved(cases, { rounds, warmup, before, cpu });
    for (const n of Object.keys(cases)) {
      out[n].push(r[n].median);
      if (cpu) cpuOut[n].push(r[n].cpuMedian);
    }
  }
  // With `cpu`, the same samples' CPU time (process.cpuUsage: every thread of the process) as
  // `out.cpu[name]`, not enumerable so that callers iterating the cases do not meet it.
  if (cpu) Object.defineProperty(out, 'cpu', { value: cpuOut, enumerable: false });
  return out;
}

/**
 * A `before` hook for {@link repeated} that gives every sample the same start, whatever ran before
 * it: a full garbage collection (so no case pays for another's garbage) and a short sleep (so the
 * scheduler does not preempt a short case for the CPU a long one just used). Applied to floor and
 * case alike; it takes each case's own collection work out of its time. Measured on the 2-vCPU
 * development machine, it made the short cases slower, not steadier (the vCPU idles in the sleep,
 * and concurrent sweeping runs on into the sample): the attestation bench uses it only with
 * NES_BENCH_ISOLATE=1 (docs/performance-notes.md, evervault).
 */
export function isolate({ sleepMs = 2 } = {}) {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  return async () => {
    gc();
    await new Promise((resolve) => setTimeout(resolve, sleepMs));
  };
}

/** Median, min and max of a list. */
export function spread(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], n: s.length };
}

/** Per-repetition ratios a/b (each repetition's case against the floor of the same repetition). */
export function ratio(as, bs) {
  return as.map((a, i) => a / bs[i]);
}

/** Largest distance from the median as a fraction of it: ±x. */
export const plusMinus = (s) => Math.max(s.max - s.median, s.median - s.min) / s.median;

export const fmt = (ms) => `${ms.toFixed(3)} ms`;
const fmtSpread = (s, digits = 3) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

export function line(label, value, extra = '') {
  console.log(`${label.padEnd(58)} ${value.padStart(12)}  ${extra}`);
}

/** Goals judged in this process; run.mjs collects them from every part for the summary. */
export const goals = [];

/**
 * Prints one measured row: median time and min–max over the repetitions, and, when `vs` is given,
 * the per-repetition ratio to that floor. With a `goal` (`{ max }` and/or `{ min }` on the ratio,
 * optionally `{ stable }` as a ±fraction), the row says whether every repetition met it.
 */
export function row(label, times, { scale = 1, vs, vsName = 'floor', goal, name, unit = 'ms' } = {}) {
  const t = spread(times.map((x) => x / scale));
  const value = unit === 'ms' ? `${t.median.toFixed(3)} ms` : `${t.median.toFixed(0)} ${unit}`;
  let extra = unit === 'ms' ? `[${t.min.toFixed(3)}–${t.max.toFixed(3)}]` : `[${t.min.toFixed(0)}–${t.max.toFixed(0)}]`;
  if (vs) {
    const q = spread(ratio(times, vs));
    extra += `  ${fmtSpread(q, 2)} x ${vsName}`;
    if (goal) {
      const verdict = judge(q, goal);
      extra += `  goal ${describeGoal(goal)}: ${verdict}`;
      goals.push({ name: name ?? label, ratio: q, goal, verdict, pm: plusMinus(q) });
    }
  }
  console.log(`${label.padEnd(58)} ${value.padStart(12)}  ${extra}`);
  return t;
}

export function describeGoal(goal) {
  const parts = [];
  if (goal.max !== undefined) parts.push(`<= ${goal.max}`);
  if (goal.min !== undefined) parts.push(`>= ${goal.min}`);
  if (goal.stable !== undefined) parts.push(`±${Math.round(goal.stable * 100)} %`);
  return parts.join(', ');
}

/** 'met' when every repetition meets the goal; 'met at the median' when only the median does; else 'MISSED'. */
export function judge(q, goal) {
  const ok = (x) => (goal.max === undefined || x <= goal.max) && (goal.min === undefined || x >= goal.min);
  const stable = goal.stable === undefined || plusMinus(q) <= goal.stable;
  if (ok(q.min) && ok(q.max) && stable) return 'met';
  if (ok(q.median) && stable) return 'met at the median only';
  return `MISSED${stable ? '' : ` (spread ±${(plusMinus(q) * 100).toFixed(0)} %)`}`;
}

/** Printed by a part run as a child of run.mjs: its judged goals, for the summary. */
export function reportGoals() {
  if (process.env.NES_BENCH_CHILD) console.log(`@@goals ${JSON.stringify(goals)}`);
}

/** The shared fixtures: NITRO_FIXTURES_DIR, or `shared/fixtures` beside the checkout (or beside its worktree folder). */
export function fixturesDir() {
  if (process.env.NITRO_FIXTURES_DIR) return process.env.NITRO_FIXTURES_DIR;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, '../../shared/fixtures'), resolve(here, '../../../shared/fixtures')];
  return candidates.find((dir) => existsSync(dir)) ?? candidates[0];
}
