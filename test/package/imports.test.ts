import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Imports `specifier` in a fresh Node process whose resolve hook lists every package it loads. */
function packagesLoadedBy(specifier: string, { watchDlopen = false } = {}): string[] {
  // With watchDlopen, every native addon loaded is listed as "DLOPEN <file>".
  const dlopen = watchDlopen ? `const d = process.dlopen; process.dlopen = (m, f, ...r) => { console.log('PKG DLOPEN ' + f); return d.call(process, m, f, ...r); };` : '';
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c); const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(r.url); if (m) console.log('PKG ' + m[1]); return r; }`;
  const script = `${dlopen} import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)})); await import(${JSON.stringify(specifier)});`;
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

  it('nitro-enclave-sdk/parent and the CLI at start load no CloudTrail client: only audit and rollout do, when they run', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk/parent')).not.toContain('@aws-sdk/client-cloudtrail');
    expect(packagesLoadedBy(pathToFileURL(join(root, 'dist', 'cli', 'main.js')).href)).not.toContain('@aws-sdk/client-cloudtrail');
    expect(packagesLoadedBy(pathToFileURL(join(root, 'dist', 'cli', 'trail.js')).href)).not.toContain('@aws-sdk/client-cloudtrail');
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

/** Imports `specifier` in a fresh Node process; lists every module it resolves: `[url, parentURL]`. */
function modulesLoadedBy(specifier: string): Array<[string, string]> {
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c); console.log('MOD ' + JSON.stringify([r.url, c.parentURL ?? ''])); return r; }`;
  const script = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)})); await import(${JSON.stringify(specifier)});`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  return out.split('\n').filter((l) => l.startsWith('MOD ')).map((l) => JSON.parse(l.slice(4)) as [string, string]);
}

describe('nitro-enclave-sdk/seal is portable', () => {
  it('loads only @hpke (no AWS SDK, no cbor-x, no native helper)', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk/seal')).toEqual(['@hpke/common', '@hpke/core']);
    const urls = modulesLoadedBy('nitro-enclave-sdk/seal').map(([url]) => url);
    expect(urls.filter((u) => /internal\/native|\.node$|\/nsm\//.test(u))).toEqual([]);
    expect(urls.some((u) => u.endsWith('/dist/seal/index.js'))).toBe(true);
  });

  it('imports no node: module (the portable path: verifier, HPKE, WebCrypto)', () => {
    expect(modulesLoadedBy('nitro-enclave-sdk/seal').filter(([url]) => url.startsWith('node:'))).toEqual([]);
  });
});

describe('nitro-enclave-sdk/tls', () => {
  it('loads no package at import (no AWS SDK, no cbor-x, undici only when a dispatcher is made) and no native helper', () => {
    expect(packagesLoadedBy('nitro-enclave-sdk/tls', { watchDlopen: true })).toEqual([]);
    const urls = modulesLoadedBy('nitro-enclave-sdk/tls').map(([url]) => url);
    expect(urls.filter((u) => /\/dist\/(kms|parent|seal|temporal|workflow|testing|vsock)\/|internal\/native/.test(u))).toEqual([]);
  });

  it('the attestation verifier it uses is the node:crypto one (index.node.js)', () => {
    const urls = modulesLoadedBy('nitro-enclave-sdk/tls').map(([url]) => url);
    expect(urls.some((u) => u.endsWith('/dist/attestation/index.node.js'))).toBe(true);
  });
});

describe('Temporal stays in its subpaths', () => {
  it('nitro-enclave-sdk/temporal loads @temporalio/common and /proto only: no AWS SDK, no native helper', () => {
    const pkgs = packagesLoadedBy('nitro-enclave-sdk/temporal', { watchDlopen: true });
    expect(pkgs.filter((p) => p.startsWith('@aws-sdk/') || p.startsWith('@smithy/'))).toEqual([]);
    expect(pkgs).toContain('@temporalio/common');
    expect(pkgs).not.toContain('@temporalio/worker');
    expect(pkgs.filter((p) => p.startsWith('DLOPEN '))).toEqual([]);
  });

  it('no other subpath loads Temporal', () => {
    for (const sub of ['nitro-enclave-sdk', 'nitro-enclave-sdk/attestation', 'nitro-enclave-sdk/nsm', 'nitro-enclave-sdk/vsock', 'nitro-enclave-sdk/kms', 'nitro-enclave-sdk/testing', 'nitro-enclave-sdk/seal', 'nitro-enclave-sdk/workflow', 'nitro-enclave-sdk/parent', 'nitro-enclave-sdk/tls']) {
      expect(packagesLoadedBy(sub).filter((p) => p.startsWith('@temporalio/')), sub).toEqual([]);
    }
  });
});


describe('enclave and parent code stay apart (issue 10)', () => {
  const under = (specifier: string, folder: string) => modulesLoadedBy(specifier).map(([url]) => url).filter((u) => u.includes(`/dist/${folder}/`));

  it('nitro-enclave-sdk/kms and the root load no module under dist/parent/ (the operator side)', () => {
    expect(under('nitro-enclave-sdk/kms', 'kms').length).toBeGreaterThan(0);
    expect(under('nitro-enclave-sdk/kms', 'parent')).toEqual([]);
    expect(under('nitro-enclave-sdk', 'parent')).toEqual([]);
  });

  it('nitro-enclave-sdk/vsock is streams only: no module under dist/kms/ or dist/parent/, no @smithy package', () => {
    expect(under('nitro-enclave-sdk/vsock', 'kms')).toEqual([]);
    expect(under('nitro-enclave-sdk/vsock', 'parent')).toEqual([]);
    expect(packagesLoadedBy('nitro-enclave-sdk/vsock').filter((p) => p.startsWith('@smithy/') || p.startsWith('@aws-sdk/'))).toEqual([]);
  });

  it('nitro-enclave-sdk/parent loads no enclave-side KMS code and no package at import (the SDK chain loads when a server starts)', () => {
    expect(under('nitro-enclave-sdk/parent', 'parent').length).toBeGreaterThan(0);
    expect(under('nitro-enclave-sdk/parent', 'kms')).toEqual([]);
    expect(packagesLoadedBy('nitro-enclave-sdk/parent')).toEqual([]);
  });
});
