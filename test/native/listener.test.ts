import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runShimmedChild } from './preload.js';
import { rawListen } from '../vsock/native-helpers.js';

// The listener's accept thread, run in a child process under an LD_PRELOAD shim around accept4().
const here = dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'nes-accept-'));
const shim = join(tmp, 'accept-shim.so');

beforeAll(() => {
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', shim, join(here, 'accept-shim.c'), '-ldl']);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function runChild(mode: 'emfile' | 'cid' | 'backlog', env: Record<string, string> = {}, extra: string[] = []): Promise<Record<string, unknown>> {
  const stdout = await runShimmedChild(join(here, 'accept-child.mjs'), [mode, join(tmp, `${mode}.sock`), ...extra], shim, { ACCEPT_SHIM_COUNT: join(tmp, `${mode}.count`), ...env });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('native connect (the vsock connect loop) against a full AF_UNIX backlog', () => {
  it('retries connect() every 10 ms while the backlog is full instead of spinning, then times out', async () => {
    const path = join(tmp, 'full.sock');
    const listener = await rawListen(path);
    try {
      const r = await runChild('backlog', { CONNECT_SHIM_COUNT: join(tmp, 'connects.count') }, [path]);
      expect(r.outcome).toBe('ERR_VSOCK_TIMEOUT');
      // 300 ms at one try per 10 ms: about 30. An unconnected AF_UNIX socket polls as POLLHUP, so a
      // loop that polls it retries at once: thousands.
      expect(r.connects).toBeGreaterThan(5);
      expect(r.connects).toBeLessThanOrEqual(60);
    } finally {
      listener.close();
    }
  });
});

describe('native listener (accept thread)', () => {
  it('backs off while accept() fails with EMFILE instead of spinning, reports it once, and recovers', async () => {
    const r = await runChild('emfile', { ACCEPT_SHIM_FAIL: join(tmp, 'fail') });
    // Backoff doubles from 10 ms to 1 s: about 7 calls in the 1 s window. A retry loop makes tens of thousands.
    expect(r.inWindow, `accept4() calls in 1 s while out of descriptors (CPU ${r.cpuMs} ms)`).toBeLessThanOrEqual(20);
    expect(r.errorsInWindow).toBe(1);
    expect(r.errors).toEqual([{ code: 'ERR_VSOCK_LISTEN', message: expect.stringContaining('Too many open files') }]);
    expect(r.recovered).toEqual({ text: 'hello local' }); // the queued connection is served once descriptors are free
  });

  it('checks the peer CID before a relay starts: a refused CID is closed unrelayed and reported', async () => {
    const r = await runChild('cid', { ACCEPT_SHIM_CIDS: '17,16' });
    expect(r.connections).toEqual([16]); // onConnection never saw CID 17
    expect(r.allowed).toEqual({ text: 'hello 16' });
    expect((r.refused as { text: string }).text).toBe(''); // closed without a byte from the listener
    expect(r.errors).toEqual([{ code: 'ERR_VSOCK_PEER_REFUSED', message: 'refused a connection from CID 17: allowed CIDs are 16' }]);
  });
});
