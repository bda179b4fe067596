// Runs in a child process started with LD_PRELOAD=nsm-shim.so: the real native
// NSM path (addon → open("/dev/nsm") → ioctl) against the simulated NSM.
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { openNsm } from '../../dist/nsm/index.js';

const out = (step, value) => process.stdout.write(`${JSON.stringify({ step, ...value })}\n`);
const attempt = async (step, fn) => {
  try {
    out(step, { ok: true, value: await fn() });
  } catch (err) {
    out(step, { ok: false, code: err.code, message: err.message });
  }
};
const hex = (b) => Buffer.from(b).toString('hex');

const nsm = openNsm(); // default path /dev/nsm, intercepted by the shim
await attempt('describeNsm', () => nsm.describeNsm());
await attempt('attestation', async () => hex(await nsm.attestation({ publicKey: Buffer.from('pk'), nonce: Buffer.from('nonce-123'), userData: Buffer.from('ud') })));
await attempt('getRandom', async () => (await nsm.getRandom()).length);
await attempt('extendPcr', async () => hex(await nsm.extendPcr(16, Buffer.from('measured'))));
await attempt('describePcr', async () => {
  const pcr = await nsm.describePcr(16);
  return { locked: pcr.locked, data: hex(pcr.data) };
});
await attempt('emsgsize', () => nsm.getRandom());
await attempt('shortBuffer', () => nsm.getRandom());
await attempt('malformed', () => nsm.getRandom());
// The device holds this answer until the 10th tick of a timer here creates NSM_SLOW_RELEASE: the
// call only returns if timers kept firing while it was in flight.
await attempt('slow', async () => {
  let ticks = 0;
  const timer = setInterval(() => {
    if (++ticks === 10) writeFileSync(process.env.NSM_SLOW_RELEASE, '');
  }, 10);
  try {
    await nsm.getRandom();
  } finally {
    clearInterval(timer);
  }
  return ticks;
});
await attempt('deviceError', () => nsm.getRandom());
await nsm.close();
// close() while an ioctl is in flight (held in the shim before it reaches the "driver"), then
// open files that would take the freed fd number: the ioctl must still reach the NSM.
await attempt('closeInFlight', async () => {
  const device = openNsm();
  const log = process.env.NSM_SHIM_LOG;
  const delay = process.env.NSM_SHIM_DELAY_FILE;
  rmSync(log, { force: true });
  rmSync(`${delay}.entered`, { force: true });
  writeFileSync(delay, '');
  const pending = device.getRandom().then((r) => r.length, (e) => e.code);
  // The shim says when the ioctl has started; it holds it there until the delay file is removed.
  const end = Date.now() + 15_000;
  while (!existsSync(`${delay}.entered`)) {
    if (Date.now() > end) throw new Error('the NSM ioctl never reached the shim');
    await new Promise((r) => setTimeout(r, 5));
  }
  const closing = device.close();
  const files = Array.from({ length: 32 }, () => openSync(process.execPath, 'r'));
  const afterClose = await device.getRandom().then(() => 'ok', (e) => e.code);
  rmSync(delay); // lets the held ioctl go on
  const result = await pending;
  for (const f of files) closeSync(f);
  await closing;
  return { result, afterClose, log: readFileSync(log, 'utf8').trim().split('\n') };
});
await attempt('missingDevice', () => openNsm({ path: '/dev/nsm-does-not-exist' }).getRandom());
process.exit(0);
