import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';

/**
 * Long enough for a python3 child to start on a loaded 2-core CI machine; a bound, so a child that
 * never gets ready fails the test with a message instead of hanging it.
 */
const READY_TIMEOUT_MS = 20_000;

type PythonChild = ChildProcessByStdio<null, Readable, Readable>;

/**
 * Runs `python3 -c script` and resolves with the first line it prints on stdout, which the script
 * prints once its socket is ready. Rejects (and kills the child) if it exits, fails to start, or
 * prints nothing within READY_TIMEOUT_MS: a fixed sleep would race the child on a loaded machine.
 */
function spawnReady(script: string, what: string): Promise<{ child: PythonChild; line: string }> {
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const fail = (why: string) => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`${what}: ${why}${stderr ? `; stderr: ${stderr.trim()}` : ''}`));
    };
    const onData = (d: Buffer) => {
      stdout += d;
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      cleanup();
      resolve({ child, line: stdout.slice(0, newline).trim() });
    };
    const onStderr = (d: Buffer) => (stderr += d);
    const onExit = (code: number | null, signal: string | null) => fail(`python3 exited (${code ?? signal}) before it was listening`);
    const onError = (err: Error) => fail(`cannot start python3 (${err.message})`);
    const timer = setTimeout(() => fail(`python3 was not listening after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    function cleanup() {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    }
    child.stdout.on('data', onData);
    child.stderr.on('data', onStderr);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/**
 * An AF_UNIX socket bound and listening (backlog 0) that never accepts, held by
 * a python3 child: Node's net.Server always accepts, so it cannot play this part.
 * Resolves once the child has called listen() (it says so on stdout).
 */
export async function rawListen(path: string): Promise<{ close(): void }> {
  const script = `import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(${JSON.stringify(path)})\ns.listen(0)\nprint("listening",flush=True)\ntime.sleep(60)`;
  const { child } = await spawnReady(script, `rawListen(${path})`);
  return { close: () => child.kill() };
}

/**
 * The same on loopback TCP: once its accept queue is full, Linux drops further SYNs, so a
 * connect stays in progress (EINPROGRESS) until the caller's deadline.
 */
export async function rawListenTcp(): Promise<{ port: number; close(): void }> {
  const script = 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)';
  const { child, line } = await spawnReady(script, 'rawListenTcp()');
  return { port: Number(line), close: () => child.kill() };
}

/**
 * An AF_UNIX listener that accepts one connection, waits until the peer's first bytes have arrived
 * (MSG_PEEK: they stay unread) and closes with them still queued, so the kernel reports ECONNRESET
 * to the peer. Node cannot wait for data without reading it; a timer would race the peer's write.
 */
export async function resetOnUnreadData(path: string): Promise<{ close(): void }> {
  const script = `import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(${JSON.stringify(path)})\ns.listen(1)\nprint("listening",flush=True)\nc,_=s.accept()\nc.recv(1,socket.MSG_PEEK)\nc.close()\ntime.sleep(60)`;
  const { child } = await spawnReady(script, `resetOnUnreadData(${path})`);
  return { close: () => child.kill() };
}
