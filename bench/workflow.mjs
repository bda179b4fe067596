// A sealed activity round trip (parent client → serveSealedActivities → handler → sealed answer)
// against its floor, interleaved in one run: a bare length-prefixed request/response over the same
// AF_UNIX stand-in and native relay, whose server does the same two AEAD operations (open + seal).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustedSessionKey } from '../dist/kms/index.js';
import { connectSocket, listenSocket } from '../dist/vsock/index.js';
import { sealState, serveSealedActivities } from '../dist/workflow/index.js';
import { createSealedActivityClient } from '../dist/workflow/parent/index.js';
import { repeated, row } from './lib.mjs';

function bareServer(path, tsk) {
  return listenSocket({ family: 'unix', path }, (socket) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = buf.readUInt32BE(0);
        const plaintext = tsk.decrypt(buf.subarray(4, 4 + n));
        const out = tsk.encrypt(plaintext);
        plaintext.fill(0);
        const h = Buffer.allocUnsafe(4);
        h.writeUInt32BE(out.length);
        socket.cork();
        socket.write(h);
        socket.write(out);
        socket.uncork();
        buf = buf.subarray(4 + n);
      }
    });
  });
}

async function bareClient(path) {
  const socket = await connectSocket({ family: 'unix', path });
  let buf = Buffer.alloc(0);
  let waiter;
  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const n = buf.readUInt32BE(0);
      const msg = buf.subarray(4, 4 + n);
      buf = buf.subarray(4 + n);
      waiter(msg);
    }
  });
  return {
    socket,
    request(payload) {
      return new Promise((resolve) => {
        waiter = resolve;
        const h = Buffer.allocUnsafe(4);
        h.writeUInt32BE(payload.length);
        socket.cork();
        socket.write(h);
        socket.write(payload);
        socket.uncork();
      });
    },
  };
}

export async function benchWorkflow({ sizes = [1024, 64 * 1024], reps = 5 } = {}) {
  console.log(`\n## Sealed activity round trip (AF_UNIX stand-in for vsock, native relay on both ends; ${reps} interleaved repetitions, [min–max])`);
  const tmp = mkdtempSync(join(tmpdir(), 'nes-wf-bench-'));
  const tsk = new TrustedSessionKey(randomBytes(32), { keyArn: 'bench', pcr0: '00', moduleId: 'bench', obtainedAt: new Date() });
  const bare = bareServer(join(tmp, 'bare.sock'), tsk);
  const server = serveSealedActivities({
    listen: { family: 'unix', path: join(tmp, 'sealed.sock') },
    key: tsk,
    handlers: { step: { from: ['client', 'step'], next: 'step', run: (input) => input } },
  });
  const bc = await bareClient(join(tmp, 'bare.sock'));
  const client = createSealedActivityClient({ address: { family: 'unix', path: join(tmp, 'sealed.sock') } });
  for (const size of sizes) {
    const plaintext = randomBytes(size);
    const envelope = tsk.encrypt(plaintext);
    const state = sealState(tsk, plaintext, { workflowId: 'bench-wf', chainId: '00'.repeat(16), activity: 'step', seq: 0, producer: 'client' });
    // Warm up untimed first: the sealed path runs far more code than the floor (client, frame reader,
    // binding, server), and with a few dozen warm-up rounds its JIT compilation fell inside the
    // measured rounds (TurboFan was the top native frame in perf).
    for (let i = 0; i < 2000; i++) {
      await bc.request(envelope);
      await client.call({ activity: 'step', workflowId: 'bench-wf', seq: 0, state });
    }
    const r = await repeated(
      {
        floor: () => bc.request(envelope),
        sealed: () => client.call({ activity: 'step', workflowId: 'bench-wf', seq: 0, state }),
      },
      { reps, rounds: 100, warmup: 20 },
    );
    row(`floor: bare request/response + open + seal, ${size / 1024} KiB`, r.floor);
    row(`sealed activity round trip, ${size / 1024} KiB`, r.sealed, { vs: r.floor, goal: { max: 1.5 }, name: `sealed activity round trip, ${size / 1024} KiB (x bare)` });
  }
  await client.close();
  bc.socket.destroy();
  await server.close();
  bare.close();
  tsk.dispose();
  rmSync(tmp, { recursive: true, force: true });
}
