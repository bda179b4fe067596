import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** A child process that said it is ready over IPC. */
export interface Child<M> {
  readonly process: ChildProcess;
  readonly ready: M;
  /** Messages after the first, in order. */
  readonly messages: M[];
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string>;
  /** SIGKILL: no cleanup, no goodbye (what a crash or the OOM killer does). */
  kill9(): Promise<void>;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<void>;
}

/**
 * Forks `script` (an .mjs helper) with one JSON argument and waits, at most `boundMs`, for its first
 * IPC message. A child that exits first fails the wait with its exit status.
 */
export async function startChild<M>(script: string, config: unknown, boundMs = 30_000): Promise<Child<M>> {
  const child = fork(join(here, script), [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const messages: M[] = [];
  const ready = await new Promise<M>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not report ready within ${boundMs} ms`));
    }, boundMs);
    child.once('message', (m) => {
      clearTimeout(timer);
      child.on('message', (next) => messages.push(next as M));
      resolve(m as M);
    });
    void exited.then((status) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${status}) before it was ready`));
    });
  });
  return {
    process: child,
    ready,
    messages,
    exited,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Resolves when `condition()` holds, checking every 20 ms; fails with `what` after `boundMs` (a bound, not an assertion on time). */
export async function until(condition: () => boolean, what: string, boundMs = 30_000): Promise<void> {
  const end = Date.now() + boundMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`gave up waiting (${boundMs} ms) for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
