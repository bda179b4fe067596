// Runs in a child process started with LD_PRELOAD=nsm-shim.so: the real native
// NSM path (addon → open("/dev/nsm") → ioctl) against the simulated NSM.
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
await attempt('slow', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  try {
    await nsm.getRandom();
  } finally {
    clearInterval(timer);
  }
  return ticks;
});
await attempt('deviceError', () => nsm.getRandom());
await nsm.close();
await attempt('missingDevice', () => openNsm({ path: '/dev/nsm-does-not-exist' }).getRandom());
process.exit(0);
