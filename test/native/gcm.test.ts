// The native helper's AES-256-GCM (gcmSeal/gcmOpen, src/internal/gcm.ts) against node:crypto and
// node-forge's pure-JS GCM, and its refusals. Runs under ASan/UBSan in `npm run test:native:sanitize`.
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as forgeNs from 'node-forge';
import { describe, expect, it } from 'vitest';
import { nativeGcm, nodeCryptoGcm } from '../../src/internal/gcm.js';
import { loadNative } from '../../src/internal/native.js';

const forge = ((forgeNs as unknown as { default?: typeof forgeNs }).default ?? forgeNs) as typeof forgeNs;
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addon = loadNative();
const native = nativeGcm(addon)!;
const concat = (parts: readonly Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length)));

/** node:crypto's GCM of the concatenations, in one go (the reference). */
function reference(key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], parts: readonly Uint8Array[]): Buffer {
  const c = createCipheriv('aes-256-gcm', key, iv);
  const a = concat(aad);
  if (a.length) c.setAAD(a);
  return Buffer.concat([c.update(concat(parts)), c.final(), c.getAuthTag()]);
}

/** `total` bytes cut into `n` parts at random places (empty parts included). */
function cut(bytes: Uint8Array, n: number): Uint8Array[] {
  const at = [0, ...Array.from({ length: n - 1 }, () => Math.floor(Math.random() * (bytes.length + 1))).sort((x, y) => x - y), bytes.length];
  return at.slice(1).map((end, i) => bytes.subarray(at[i], end));
}

describe('native AES-256-GCM (the helper, over Node\'s own OpenSSL)', () => {
  it('is available in this build', () => {
    expect(addon.gcmAvailable()).toBe(true);
    expect(native.name).toBe('native');
  });

  it('seals the concatenation of its parts exactly as node:crypto does, at the offset, touching nothing else', () => {
    const sizes = [0, 1, 15, 16, 17, 1000, 65535, 65536, 65537, 3 * 65536 + 5, (1 << 20) + 3];
    for (const size of sizes) {
      const key = randomBytes(32);
      const iv = randomBytes(12);
      const plain = randomBytes(size);
      const parts = cut(plain, 1 + (size % 4));
      const aad = cut(randomBytes(size % 97), 1 + (size % 3));
      const at = size % 7;
      const out = Buffer.alloc(at + size + 16 + 5, 0xa5);
      native.seal(key, iv, aad, parts, out, at);
      expect(out.subarray(at, at + size + 16).equals(reference(key, iv, aad, parts)), `size ${size}`).toBe(true);
      expect([...out.subarray(0, at), ...out.subarray(at + size + 16)].every((b) => b === 0xa5)).toBe(true);
      const fallback = Buffer.alloc(at + size + 16 + 5, 0xa5);
      nodeCryptoGcm.seal(key, iv, aad, parts, fallback, at);
      expect(fallback.equals(out)).toBe(true);
      const opened = native.open(key, iv, aad, out.subarray(at, at + size), out.subarray(at + size, at + size + 16));
      expect(opened && Buffer.from(opened).equals(plain)).toBe(true);
    }
  });

  it('agrees with node-forge\'s pure-JS GCM (code that shares nothing with OpenSSL)', () => {
    for (const size of [0, 13, 64, 1001]) {
      const key = randomBytes(32);
      const iv = randomBytes(12);
      const plain = randomBytes(size);
      const aad = randomBytes(size % 50);
      const f = forge.cipher.createCipher('AES-GCM', forge.util.createBuffer(key.toString('binary')));
      f.start({ iv: iv.toString('binary'), additionalData: aad.toString('binary'), tagLength: 128 });
      f.update(forge.util.createBuffer(plain.toString('binary')));
      f.finish();
      const expected = Buffer.concat([Buffer.from(f.output.getBytes(), 'binary'), Buffer.from(f.mode.tag.getBytes(), 'binary')]);
      const out = Buffer.alloc(size + 16);
      native.seal(key, iv, [aad], [plain], out, 0);
      expect(out.toString('hex')).toBe(expected.toString('hex'));
    }
  });

  it('refuses a flipped bit anywhere in ciphertext, tag or AAD, and leaves nothing of the plaintext in its output', () => {
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const plain = randomBytes(300);
    const aad = randomBytes(40);
    const sealed = reference(key, iv, [aad], [plain]);
    const ct = sealed.subarray(0, 300);
    const tag = sealed.subarray(300);
    for (const [what, flip] of [['ciphertext', (b: Buffer) => (b[7]! ^= 1)], ['tag', (b: Buffer) => (b[315]! ^= 0x80)], ['aad', (b: Buffer) => (b[340]! ^= 2)]] as const) {
      const bad = Buffer.concat([sealed, aad]);
      flip(bad);
      const out = Buffer.alloc(300, 0x5a);
      expect(addon.gcmOpen(key, iv, [bad.subarray(316)], bad.subarray(0, 300), bad.subarray(300, 316), out), what).toBe(false);
      expect(out.every((b) => b === 0), `${what}: the output is zeroed`).toBe(true);
      expect(native.open(key, iv, [bad.subarray(316)], bad.subarray(0, 300), bad.subarray(300, 316))).toBeNull();
    }
    const out = Buffer.alloc(300);
    expect(addon.gcmOpen(key, iv, [aad], ct, tag, out)).toBe(true);
    expect(out.equals(plain)).toBe(true);
  });

  it('refuses overlapping buffers, wrong sizes and malformed arguments before touching anything', () => {
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const buf = Buffer.alloc(200, 1);
    const before = Buffer.from(buf);
    expect(() => addon.gcmSeal(key, iv, [], [buf.subarray(0, 50)], buf, 40)).toThrow(/overlaps a plaintext part/);
    expect(() => addon.gcmSeal(key, iv, [buf.subarray(150, 160)], [new Uint8Array(10)], buf, 140)).toThrow(/overlaps the aad/);
    expect(() => addon.gcmSeal(key, iv, [], [new Uint8Array(100)], buf, 90)).toThrow(/too small/);
    expect(() => addon.gcmSeal(key.subarray(1), iv, [], [], buf, 0)).toThrow(RangeError);
    expect(() => addon.gcmSeal(key, randomBytes(16), [], [], buf, 0)).toThrow(RangeError);
    expect(() => addon.gcmSeal(key, iv, [], [], buf, 1.5)).toThrow(TypeError);
    expect(() => addon.gcmSeal(key, iv, [], [], buf, -1)).toThrow(TypeError);
    expect(() => addon.gcmSeal(key, iv, ['x' as unknown as Uint8Array], [], buf, 0)).toThrow(TypeError);
    expect(() => addon.gcmSeal(key, iv, [], [new Uint16Array(4) as unknown as Uint8Array], buf, 0)).toThrow(TypeError);
    expect(() => addon.gcmSeal(key, iv, [], Array.from({ length: 17 }, () => new Uint8Array(1)), buf, 0)).toThrow(TypeError);
    expect(buf.equals(before)).toBe(true);
    expect(() => addon.gcmOpen(key, iv, [], buf.subarray(0, 100), buf.subarray(100, 116), buf.subarray(50, 150))).toThrow(/overlaps an input/);
    expect(() => addon.gcmOpen(key, iv, [], buf.subarray(0, 100), buf.subarray(100, 116), Buffer.alloc(99))).toThrow(/as long as the ciphertext/);
    expect(() => addon.gcmOpen(key, iv, [], buf.subarray(0, 100), buf.subarray(100, 115), Buffer.alloc(100))).toThrow(RangeError);
    expect(buf.equals(before)).toBe(true);
  });

  it('takes no pointer until every list element is read: a getter that shrinks or detaches an earlier input makes no stale read', () => {
    const key = new Uint8Array(32).fill(3);
    const iv = new Uint8Array(12).fill(4);
    // A resizable buffer read as parts[0], shrunk to nothing by the getter of parts[1]: the part is
    // sealed as it is after the getter (empty), not as the 1 MiB that was freed.
    const rab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(1 << 20, { maxByteLength: 1 << 20 });
    const tail = new Uint8Array([1, 2, 3, 4]);
    const parts: Uint8Array[] = [new Uint8Array(rab), tail];
    Object.defineProperty(parts, 1, { get: () => (rab.resize(0), tail) });
    const out = Buffer.alloc(4 + 16);
    native.seal(key, iv, [], parts, out, 0);
    expect(out.equals(reference(key, iv, [], [tail]))).toBe(true);
    // The key, detached by the getter of aad[0]: refused as 0 bytes, never read.
    const aad: Uint8Array[] = [];
    Object.defineProperty(aad, 0, { get: () => (structuredClone(key.buffer, { transfer: [key.buffer] }), new Uint8Array(1)) });
    expect(() => addon.gcmOpen(key, iv, aad, new Uint8Array(16), new Uint8Array(16), new Uint8Array(16))).toThrow(/key must be 32 bytes/);
    expect(() => addon.gcmSeal(new Uint8Array(32), iv, [], [], Buffer.alloc(16), 2 ** 64)).toThrow(/at must be a non-negative integer/);
  });
});

describe('which AES-256-GCM envelopes use', () => {
  const run = (env: Record<string, string>) =>
    JSON.parse(
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `
          const { defaultGcm } = await import('./dist/internal/gcm.js');
          const { TrustedSessionKey } = await import('./dist/kms/trusted-session-key.js');
          const meta = { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/k', pcr0: '00', moduleId: 'm', obtainedAt: new Date(0) };
          const key = Buffer.alloc(32, 7);
          const tsk = new TrustedSessionKey(Uint8Array.from(key), meta);
          const other = process.env.OPEN ? Buffer.from(process.env.OPEN, 'hex') : tsk.encrypt(new TextEncoder().encode('hello'), new Uint8Array([1]));
          let name; try { name = defaultGcm().name; } catch (e) { name = e.name + ': ' + e.message; }
          console.log(JSON.stringify({ name, sealed: Buffer.from(tsk.encrypt(new TextEncoder().encode('hello'), new Uint8Array([1]))).toString('hex'), opened: new TextDecoder().decode(tsk.decrypt(other, new Uint8Array([1]))) }));
          `,
        ],
        { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    ) as { name: string; sealed: string; opened: string };

  it('native by default, node:crypto when asked or when the helper is missing; each opens what the other sealed', () => {
    const byNative = run({});
    expect(byNative.name).toBe('native');
    const byNode = run({ NITRO_ENCLAVE_GCM: 'node:crypto', OPEN: byNative.sealed });
    expect(byNode).toMatchObject({ name: 'node:crypto', opened: 'hello' });
    expect(run({ OPEN: byNode.sealed })).toMatchObject({ name: 'native', opened: 'hello' });
    expect(run({ NITRO_ENCLAVE_NATIVE: join(root, 'build', 'no-such-addon.node'), OPEN: byNative.sealed })).toMatchObject({ name: 'node:crypto', opened: 'hello' });
  });

  it('NITRO_ENCLAVE_GCM=native fails loudly without the helper; another value is a TypeError', () => {
    expect(() => run({ NITRO_ENCLAVE_GCM: 'native', NITRO_ENCLAVE_NATIVE: join(root, 'build', 'no-such-addon.node') })).toThrow(/ERR_NATIVE_UNAVAILABLE/);
    expect(() => run({ NITRO_ENCLAVE_GCM: 'openssl' })).toThrow(/NITRO_ENCLAVE_GCM must be/);
  });
});
