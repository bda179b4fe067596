// Shared helpers for `npm run bench`. Cases are measured interleaved (one sample of
// each per round), so a noisy neighbour slows the floor and the case alike and the
// ratios stay meaningful on a shared 2-core machine.
import { performance } from 'node:perf_hooks';

export async function interleaved(cases, { rounds = 300, warmup = 30 } = {}) {
  const names = Object.keys(cases);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < warmup + rounds; r++) {
    for (const name of names) {
      const t = performance.now();
      await cases[name](r);
      if (r >= warmup) samples[name].push(performance.now() - t);
    }
  }
  return Object.fromEntries(
    names.map((n) => {
      const s = samples[n].sort((a, b) => a - b);
      return [n, { median: s[Math.floor(s.length / 2)], p90: s[Math.floor(s.length * 0.9)] }];
    }),
  );
}

export const fmt = (ms) => `${ms.toFixed(3)} ms`;

export function line(label, value, extra = '') {
  console.log(`${label.padEnd(58)} ${value.padStart(12)}  ${extra}`);
}
