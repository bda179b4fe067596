import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * An AF_UNIX socket bound and listening (backlog 0) that never accepts, held by
 * a python3 child: Node's net.Server always accepts, so it cannot play this part.
 */
export async function rawListen(path: string): Promise<{ close(): void }> {
  const child: ChildProcess = spawn('python3', ['-c', `import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(${JSON.stringify(path)})\ns.listen(0)\ntime.sleep(60)`], { stdio: 'ignore' });
  const end = Date.now() + 5000;
  while (!existsSync(path) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 50));
  return { close: () => child.kill() };
}

/**
 * The same on loopback TCP: once its accept queue is full, Linux drops further SYNs, so a
 * connect stays in progress (EINPROGRESS) until the caller's deadline.
 */
export async function rawListenTcp(): Promise<{ port: number; close(): void }> {
  const child = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = Number(await new Promise<string>((resolve) => child.stdout.once('data', (d) => resolve(String(d).trim()))));
  return { port, close: () => child.kill() };
}
