import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustedSessionKey } from '../../src/kms/trusted-session-key.js';
import { serveSealedActivities, type SealedActivityHandler, type ServeSealedActivitiesOptions } from '../../src/workflow/index.js';

export const meta = { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/tsk', pcr0: 'aa'.repeat(48), moduleId: 'i-0-enc0', obtainedAt: new Date(0) };
/** The chain id of the tests' states (one run); the server copies it forward. */
export const CHAIN = 'c0ffee00'.repeat(4);
export const newKey = () => new TrustedSessionKey(randomBytes(32), meta);
export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code ?? `${(err as Error).name}: ${(err as Error).message}`;
  }
}

/** The three agents of the tests: research → analysis → report, plus probes. */
export function agents(events: { running: number; maxRunning: number; started: number; signals: AbortSignal[]; inputs: Uint8Array[]; outputs: Uint8Array[] }): Record<string, SealedActivityHandler> {
  const track = async <T>(f: () => Promise<T>): Promise<T> => {
    events.started++;
    events.running++;
    events.maxRunning = Math.max(events.maxRunning, events.running);
    try {
      return await f();
    } finally {
      events.running--;
    }
  };
  return {
    research: { from: 'client', next: 'analysis', run: (input) => track(async () => enc(`notes on ${dec(input)}`)) },
    analysis: {
      from: 'research',
      next: 'report',
      run: (input, ctx) =>
        track(async () => {
          events.inputs.push(input);
          await sleep(Number(/delay=(\d+)/.exec(dec(input))?.[1] ?? 0));
          const out = enc(`${dec(input).toUpperCase()} (wf ${ctx.workflowId}, step ${ctx.seq}, from ${ctx.producer})`);
          events.outputs.push(out);
          return out;
        }),
    },
    echo: { from: ['client', 'echo'], next: 'echo', run: (input) => track(async () => Uint8Array.from(input)) },
    slow: {
      from: 'client',
      next: 'done',
      run: (_input, ctx) =>
        track(
          () =>
            new Promise((resolve, reject) => {
              events.signals.push(ctx.signal);
              const t = setTimeout(() => resolve(enc('slow done')), 10_000);
              ctx.signal.addEventListener('abort', () => {
                clearTimeout(t);
                reject(ctx.signal.reason);
              });
            }),
        ),
    },
    boom: {
      from: 'client',
      next: 'done',
      run: (input) =>
        track(async () => {
          throw Object.assign(new Error(`cannot parse patient record: ${dec(input)}`), { code: 'E_BAD_RECORD' });
        }),
    },
  };
}

export function newEvents() {
  return { running: 0, maxRunning: 0, started: 0, signals: [] as AbortSignal[], inputs: [] as Uint8Array[], outputs: [] as Uint8Array[] };
}

export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'nes-wf-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function serve(path: string, key: TrustedSessionKey, extra: Partial<ServeSealedActivitiesOptions> = {}, events = newEvents()) {
  const server = serveSealedActivities({ listen: { family: 'unix', path }, key, handlers: agents(events), ...extra });
  return { server, events };
}

/** Waits until `cond()` holds (polling), or fails after `timeoutMs`: for events whose timing a loaded machine stretches. */
export async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(10);
  }
}
