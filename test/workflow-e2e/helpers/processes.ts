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

/** Options of {@link startChild}. */
export interface StartChildOptions<M> {
  /** Every message, before and after ready, with the child (to answer over IPC). */
  onMessage?: (message: M, child: ChildProcess) => void;
  /** Which message means ready. Default: the first. */
  isReady?: (message: M) => boolean;
  /** Bound on the wait for ready. Default 30 000 ms. */
  boundMs?: number;
}

/**
 * Forks `script` (an .mjs helper) with one JSON argument and waits, at most `boundMs`, for its ready
 * message. A child that exits first fails the wait with its exit status (and its last message).
 */
export async function startChild<M>(script: string, config: unknown, options: StartChildOptions<M> = {}): Promise<Child<M>> {
  const boundMs = options.boundMs ?? 30_000;
  const isReady = options.isReady ?? (() => true);
  const child = fork(join(here, script), [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const messages: M[] = [];
  let readyMessage: M | undefined;
  const ready = await new Promise<M>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not report ready within ${boundMs} ms`));
    }, boundMs);
    child.on('message', (raw) => {
      const m = raw as M;
      options.onMessage?.(m, child);
      if (readyMessage === undefined && isReady(m)) {
        readyMessage = m;
        clearTimeout(timer);
        resolve(m);
      } else messages.push(m);
    });
    void exited.then((status) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${status}) before it was ready; last message: ${JSON.stringify(messages.at(-1))}`));
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
