// issue 13 §1: nitro-enclave-sdk/attestation bundles for the browser with esbuild: no `node:`
// import, no Buffer or process on the portable path, no top-level await.
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bundleScript } from './harness.js';

describe('the attestation entry point bundles for the browser', () => {
  it('bundles with esbuild platform "browser" and references no Node globals', async () => {
    const script = await bundleScript('src/attestation/index.ts');
    try {
      expect(script.code).not.toMatch(/\bBuffer\s*\./);
      expect(script.code).not.toMatch(/\bprocess\s*\./);
      expect(script.code).not.toMatch(/\brequire\s*\(/);
      // Top-level await would show as an `await` outside any function in the ESM output; esbuild
      // refuses top-level await for format esm + target es2020, so bundle once more that way.
      const { build } = await import('esbuild');
      await expect(build({ entryPoints: ['src/attestation/index.ts'], bundle: true, write: false, format: 'esm', platform: 'browser', target: 'es2020', logLevel: 'silent' })).resolves.toBeTruthy();
    } finally {
      rmSync(script.dir, { recursive: true, force: true });
    }
  });

  it('fails on a node: import (the check is real)', async () => {
    await expect(bundleScript('src/kms/cms.ts')).rejects.toThrow(/imports Node built-ins: node:/);
  });
});
