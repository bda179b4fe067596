import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Imports `specifier` in a fresh Node process whose resolve hook lists every package it loads. */
function packagesLoadedBy(specifier: string): string[] {
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c); const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(r.url); if (m) console.log('PKG ' + m[1]); return r; }`;
  const script = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)})); await import(${JSON.stringify(specifier)});`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  return [...new Set(out.split('\n').filter((l) => l.startsWith('PKG ')).map((l) => l.slice(4)))].sort();
}

describe('each subpath pulls in no more than it needs (built package, by its public name)', () => {
  it('nitro-enclave-sdk/attestation loads no dependency at all (no AWS SDK)', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk/attestation')).toEqual([]);
  });

  it('nitro-enclave-sdk/nsm loads only cbor-x', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk/nsm')).toEqual(['cbor-x']);
  });

  it('nitro-enclave-sdk/vsock loads no @aws-sdk package', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk/vsock').filter((p) => p.startsWith('@aws-sdk/'))).toEqual([]);
  });

  it('the root and /kms load the AWS SDK, as getTrustedSessionKey needs it', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk')).toContain('@aws-sdk/client-kms');
  });

  it('nitro-enclave-sdk/testing loads no gRPC or Temporal package; /testing/temporal loads them only when a stand-in starts', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk/testing').filter((p) => p.startsWith('@grpc/') || p.startsWith('@temporalio/'))).toEqual([]);
    expect(packagesLoadedBy('nitro-enclave-sdk/testing/temporal')).toEqual([]);
  });

  it('nitro-enclave-sdk/workflow (enclave side) loads no @temporalio or @aws-sdk package', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk/workflow').filter((p) => p.startsWith('@temporalio/') || p.startsWith('@aws-sdk/'))).toEqual([]);
  });

  it('nitro-enclave-sdk/workflow/parent loads @temporalio/activity and /common (optional peers), no @aws-sdk and no @temporalio/worker', () => {
    const loaded = packagesLoadedBy('nitro-enclave-sdk/workflow/parent');
    expect(loaded).toEqual(expect.arrayContaining(['@temporalio/activity', '@temporalio/common']));
    expect(loaded.filter((p) => p.startsWith('@aws-sdk/') || p === '@temporalio/worker' || p === '@temporalio/client')).toEqual([]);
  });
});

