// The pool's default warm-up is wired in: one RSA-OAEP private operation per pair prepared ahead, with
// that pair's key, on this thread (node:crypto's privateDecrypt, observed through a pass-through mock).
import * as crypto from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';

vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, privateDecrypt: vi.fn(real.privateDecrypt) };
});

const { EphemeralKeyPool } = await import('../../src/kms/keypair.js');

describe('EphemeralKeyPool default warm-up', () => {
  it('decrypts once with each prepared key, and with nothing else', async () => {
    const decrypt = vi.mocked(crypto.privateDecrypt);
    decrypt.mockClear();
    const pool = new EphemeralKeyPool();
    await pool.prepare(2048);
    expect(decrypt).toHaveBeenCalledTimes(1);
    const pair = await pool.take(2048);
    expect((decrypt.mock.calls[0]![0] as { key: crypto.KeyObject }).key).toBe(pair.privateKey);
    await pool.take(2048); // a fresh pair for a caller that did not prepare: not warmed
    expect(decrypt).toHaveBeenCalledTimes(1);
  });
});
