// Runs in a child process started with LD_PRELOAD=accept-shim.so: the native listener's accept
// thread against a shim that can fail accept4() with EMFILE or report vsock peer CIDs.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { connectSocket, listenSocket } from '../../dist/vsock/index.js';

const [mode, path] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Waits for `check()` (bounded: on a loaded machine, well past any timing the test means). */
const until = async (check, what) => {
  const end = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
};
const calls = () => (existsSync(process.env.ACCEPT_SHIM_COUNT) ? Number(readFileSync(process.env.ACCEPT_SHIM_COUNT, 'utf8').trim()) : 0);
const errors = [];
const connections = [];
const listener = listenSocket({ family: 'unix', path }, (socket) => {
  connections.push(socket.peerCid ?? null);
  socket.end(`hello ${socket.peerCid ?? 'local'}`);
}, { onError: (e) => errors.push({ code: e.code, message: e.message }), ...(mode === 'cid' ? { allowedCids: [16] } : {}) });

/** Connects and returns what the listener sent before closing (and whether the stream ended cleanly). */
const talk = () =>
  new Promise((resolve) => {
    const c = connect(path);
    let text = '';
    c.on('data', (d) => (text += d));
    c.on('error', (e) => resolve({ text, error: e.code }));
    c.on('close', () => resolve({ text }));
  });

if (mode === 'emfile') {
  writeFileSync(process.env.ACCEPT_SHIM_FAIL, '');
  const reply = talk();
  await until(() => errors.length > 0, 'the first EMFILE report'); // the accept thread is failing now
  const before = calls();
  const cpu0 = process.cpuUsage();
  await sleep(1000); // the window: a spinning loop calls accept4() tens of thousands of times here
  const cpu = process.cpuUsage(cpu0);
  const inWindow = calls() - before;
  const errorsInWindow = errors.length;
  rmSync(process.env.ACCEPT_SHIM_FAIL); // descriptors are free again
  const recovered = await Promise.race([reply, sleep(15_000).then(() => 'no reply')]);
  process.stdout.write(JSON.stringify({ inWindow, cpuMs: (cpu.user + cpu.system) / 1000, errorsInWindow, errors: errors.slice(0, 3), recovered, connections }));
} else if (mode === 'backlog') {
  // argv[4]: an AF_UNIX listener that never accepts (held by the test); fill its backlog first.
  const full = { family: 'unix', path: process.argv[4] };
  for (let i = 0; i < 4; i++) await connectSocket(full, { timeoutMs: 200 }).catch(() => {});
  const count = () => (existsSync(process.env.CONNECT_SHIM_COUNT) ? Number(readFileSync(process.env.CONNECT_SHIM_COUNT, 'utf8').trim()) : 0);
  const before = count();
  const outcome = await connectSocket(full, { timeoutMs: 300 }).then(() => 'connected', (e) => e.code);
  process.stdout.write(JSON.stringify({ outcome, connects: count() - before }));
} else {
  const refused = await talk(); // the shim reports CID 17
  const allowed = await talk(); // then CID 16
  await until(() => errors.length > 0, 'the refused CID report');
  process.stdout.write(JSON.stringify({ refused, allowed, errors, connections }));
}
listener.close();
process.exit(0);
