// Throughput of the native relay (the vsock code path) against a direct AF_UNIX socket (floor).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectSocket } from '../dist/vsock/index.js';
import { line } from './lib.mjs';

async function throughput(socket, bytes) {
  const chunk = Buffer.alloc(256 * 1024, 7);
  const t = performance.now();
  let received = 0;
  const done = new Promise((resolve) => socket.on('data', (d) => { received += d.length; if (received >= bytes) resolve(); }));
  for (let sent = 0; sent < bytes; sent += chunk.length) if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
  await done;
  socket.destroy();
  return (bytes * 2) / ((performance.now() - t) / 1000) / 1e6;
}

export async function benchRelay() {
  console.log('\n## Stream relay (echo, 128 MiB each way)');
  const tmp = mkdtempSync(join(tmpdir(), 'nes-relay-'));
  const path = join(tmp, 'echo.sock');
  const server = createServer((s) => s.pipe(s));
  await new Promise((r) => server.listen(path, r));
  const bytes = 128 * 1024 * 1024;
  const direct = await throughput(await new Promise((r) => { const s = connect(path, () => r(s)); }), bytes);
  const relayed = await throughput(await connectSocket({ family: 'unix', path }), bytes);
  line('floor: direct AF_UNIX socket', `${direct.toFixed(0)} MB/s`);
  line('native relay (socketpair + 2 pump threads)', `${relayed.toFixed(0)} MB/s`, `${(relayed / direct).toFixed(2)} x direct`);
  server.close();
  rmSync(tmp, { recursive: true, force: true });
}
