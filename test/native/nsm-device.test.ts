import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAttestationDocument } from '../../src/attestation/index.js';
import { createSimulatedEnclave, createSimulatedNsm } from '../../src/testing/index.js';
import { runShimmedChild } from './preload.js';

const here = dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'nes-nsm-'));
const shim = join(tmp, 'nsm-shim.so');
const socketPath = join(tmp, 'nsm.sock');
const enclave = createSimulatedEnclave();
const device = createSimulatedNsm(enclave);
const EMSGSIZE = 90;
const slowRelease = join(tmp, 'slow-release');

/**
 * What the "device" answers for request #i: the simulated NSM, or a scripted misbehaviour.
 * `heldUntil`: no answer until that file exists (the child creates it from a timer, which only
 * fires if the ioctl left its event loop free), or 15 s have passed.
 */
const overrides: Record<number, { errno?: number; claimedLength?: number; raw?: Uint8Array; heldUntil?: string }> = {
  5: { errno: EMSGSIZE },
  6: { claimedLength: 0x4000 },
  7: { raw: Uint8Array.of(0xff, 0xfe) },
  8: { heldUntil: slowRelease },
  9: { errno: 5 }, // EIO
};

let server: Server;
const seen: Uint8Array[] = [];

beforeAll(async () => {
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', shim, join(here, 'nsm-shim.c'), '-ldl']);
  server = createServer((socket) => {
    let buffer = Buffer.alloc(0);
    socket.on('data', async (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 4 && buffer.length >= 4 + buffer.readUInt32LE(0)) {
        const len = buffer.readUInt32LE(0);
        const request = new Uint8Array(buffer.subarray(4, 4 + len));
        buffer = buffer.subarray(4 + len);
        const index = seen.push(request) - 1;
        const o = overrides[index] ?? {};
        if (o.heldUntil) {
          const end = Date.now() + 15_000;
          while (!existsSync(o.heldUntil) && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
        }
        let body: Uint8Array;
        try {
          body = o.errno ? new Uint8Array(0) : (o.raw ?? device.handle(request));
        } catch (err) {
          console.error('simulated NSM failed', err);
          throw err;
        }
        const head = Buffer.alloc(12);
        head.writeInt32LE(o.errno ?? 0, 0);
        head.writeUInt32LE(o.claimedLength ?? body.length, 4);
        head.writeUInt32LE(body.length, 8);
        socket.write(Buffer.concat([head, body]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
});

afterAll(() => {
  server.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function runChild(): Promise<Record<string, { ok: boolean; value?: unknown; code?: string; message?: string }>> {
  rmSync(slowRelease, { force: true }); // each run of the child releases its own slow request
  const stdout = await runShimmedChild(join(here, 'nsm-child.mjs'), [], shim, { NSM_SHIM_SOCKET: socketPath, NSM_SHIM_DELAY_FILE: join(tmp, 'delay'), NSM_SHIM_LOG: join(tmp, 'shim.log'), NSM_SLOW_RELEASE: slowRelease });
  return Object.fromEntries(stdout.trim().split('\n').map((l) => { const j = JSON.parse(l); return [j.step, j]; }));
}

describe('native NSM path (addon ioctl) against the simulated NSM through an LD_PRELOAD shim', () => {
  it('marshals every request through the real ioctl and maps errno and malformed answers to codes', async () => {
    const r = await runChild();
    expect(r.describeNsm).toMatchObject({ ok: true, value: { moduleId: enclave.moduleId, maxPcrs: 32, digest: 'SHA384' } });

    expect(r.attestation!.ok).toBe(true);
    const doc = new Uint8Array(Buffer.from(r.attestation!.value as string, 'hex'));
    const facts = await verifyAttestationDocument(doc, { trustAnchors: [enclave.trustAnchor], nonce: Buffer.from('nonce-123'), publicKey: Buffer.from('pk'), userData: Buffer.from('ud') });
    expect(facts.pcrsHex[0]).toBe(enclave.imageSha384);
    expect(doc.length).toBeGreaterThan(3000); // a multi-kilobyte answer crossed the 12 KiB response iovec intact

    expect(r.getRandom).toMatchObject({ ok: true, value: 256 });
    expect(r.extendPcr!.ok).toBe(true);
    expect(r.describePcr).toMatchObject({ ok: true, value: { locked: false, data: r.extendPcr!.value } });
    expect(r.emsgsize).toMatchObject({ ok: false, code: 'ERR_NSM_INPUT_TOO_LARGE', message: 'the NSM rejected the request as too large (EMSGSIZE)' });
    expect(r.shortBuffer).toMatchObject({ ok: false, code: 'ERR_NSM_BUFFER_TOO_SMALL' });
    expect(r.malformed).toMatchObject({ ok: false, code: 'ERR_NSM_INVALID_RESPONSE' });
    expect(r.deviceError).toMatchObject({ ok: false, code: 'ERR_NSM_INTERNAL_ERROR', message: expect.stringContaining('Input/output error') });
    expect(r.missingDevice).toMatchObject({ ok: false, code: 'ERR_NSM_DEVICE_UNAVAILABLE', message: expect.stringContaining('inside a Nitro Enclave') });
  });

  it('runs the blocking ioctl off the event loop (timers keep firing during a slow device call)', async () => {
    seen.length = 0;
    const r = await runChild();
    expect(r.slow!.ok).toBe(true);
    expect(r.slow!.value as number).toBeGreaterThanOrEqual(10);
  });

  it('close() during an in-flight ioctl keeps the fd until the ioctl returns, so it never lands on a reused fd', async () => {
    const r = await runChild();
    const step = r.closeInFlight!;
    expect(step.ok).toBe(true);
    const { result, afterClose, log } = step.value as { result: unknown; afterClose: unknown; log: string[] };
    expect(log.filter((l) => l.startsWith('ioctl OTHER'))).toEqual([]);
    expect(result).toBe(256); // the request begun before close() completed on the device
    expect(afterClose).toBe('ERR_NSM_DEVICE_UNAVAILABLE'); // a request after close() is refused up front
    const fd = log[0]!.split(' ')[2];
    expect(log).toEqual([`ioctl nsm ${fd}`, `close nsm ${fd}`]); // the fd was closed, after the ioctl
  });

  it('sent the requests the Rust NSM API would send, byte for byte', () => {
    expect(Buffer.from(seen[0]!).toString('hex')).toBe('6b44657363726962654e534d'); // "DescribeNSM"
    expect(Buffer.from(seen[2]!).toString('hex')).toBe(`69${Buffer.from('GetRandom').toString('hex')}`); // "GetRandom"
    expect(seen[1]![0]).toBe(0xa1); // {"Attestation": {...}}
  });
});
