// Runs in its own process (node --expose-gc) so that what it measures is the enclave side only:
// `reader` feeds a FrameReader one byte at a time; `server` runs serveSealedActivities and answers
// memory questions over IPC while memory.test.ts plays the parent from another process.
// Memory is heapUsed + external (external already includes arrayBuffers, so adding it would count
// every Buffer twice), measured after a full GC. Never RSS.
import { randomBytes } from 'node:crypto';

const [mode, arg] = process.argv.slice(2);
const measure = () => {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

if (mode === 'reader') {
  // arg: the module holding FrameReader (the built one by default; main's for the failing-first check)
  const { FrameReader } = await import(arg);
  const total = 512 * 1024;
  const header = Buffer.alloc(9);
  header.writeUInt32BE(5 + 2 * 1024 * 1024, 0); // an unfinished 2 MiB frame
  header[4] = 0x01;
  const body = randomBytes(total);
  const reader = new FrameReader(8 * 1024 * 1024);
  const before = measure();
  for (let i = 0; i < header.length; i++) reader.push(header.subarray(i, i + 1));
  // One byte per push, as a parent writing one byte at a time delivers it.
  for (let i = 0; i < total; i++) reader.push(body.subarray(i, i + 1));
  const after = measure();
  process.stdout.write(JSON.stringify({ bytes: total + header.length, grown: after - before, buffered: reader.buffered }));
} else if (mode === 'server') {
  const { serveSealedActivities } = await import('nitro-enclave-sdk/workflow');
  const { TrustedSessionKey } = await import('nitro-enclave-sdk');
  const { path, limits } = JSON.parse(arg);
  const key = new TrustedSessionKey(randomBytes(32), { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/tsk', pcr0: 'aa'.repeat(48), moduleId: 'i-0-enc0', obtainedAt: new Date(0) });
  const server = serveSealedActivities({ listen: { family: 'unix', path }, key, handlers: { echo: { from: 'client', next: 'echo', run: (b) => Uint8Array.from(b) } }, limits, onError: () => {} });
  // Warm up what the first connection allocates once (code, native relay bindings), then take the baseline.
  await new Promise((r) => setTimeout(r, 50));
  const baseline = measure();
  process.on('message', (m) => {
    if (m === 'measure') process.send({ grown: measure() - baseline, bufferedBytes: server.bufferedBytes, connections: server.connections });
    if (m === 'close') server.close().then(() => process.exit(0));
  });
  process.send('ready');
}
