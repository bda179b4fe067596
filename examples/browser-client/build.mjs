#!/usr/bin/env node
// Bundles the page's module for browsers with esbuild, from the SDK's sources (src/seal and the
// attestation verifier it calls): `node examples/browser-client/build.mjs [outdir]`.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * @hpke/common keeps an `await import("crypto")` for Node <= 18, reached only where
 * `globalThis.crypto` is missing (never in browsers, Deno, Bun, workerd or Node >= 20). This
 * esbuild plugin resolves that one import to `globalThis.crypto`, so the bundle has no Node
 * import at all; any other Node built-in still fails the build.
 */
export const hpkeNodeFallbackShim = {
  name: 'hpke-node18-fallback',
  setup(b) {
    b.onResolve({ filter: /^(node:)?crypto$/ }, (args) =>
      /[\\/]@hpke[\\/]common[\\/]/.test(args.importer) ? { path: 'webcrypto', namespace: 'hpke-node18-fallback' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'hpke-node18-fallback' }, () => ({ contents: 'export const webcrypto = globalThis.crypto;', loader: 'js' }));
  },
};

/**
 * Bundles a page module that imports `nitro-enclave-sdk/seal` (resolved to this repository's
 * src/seal) into one browser ESM file: used by this page and by examples/browser-gateway.
 */
export async function bundleSealPage(entry, outfile) {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    alias: { 'nitro-enclave-sdk/seal': resolve(here, '../../src/seal/index.ts') },
    plugins: [hpkeNodeFallbackShim],
    logLevel: 'silent',
  });
  return outfile;
}

/** Builds `client.js` (and copies nothing else: index.html is served beside it). */
export async function buildBrowserClient(outdir = here) {
  return bundleSealPage(join(here, 'client.mjs'), join(outdir, 'client.js'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await buildBrowserClient(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`built ${out}; serve ${here}/index.html with it (client.js beside index.html)`);
}
