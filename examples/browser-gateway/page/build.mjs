// Bundles the page's module for browsers with esbuild, from the SDK's sources (src/seal) and
// @hpke/core: `node examples/browser-gateway/page/build.mjs [outdir]`.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { hpkeNodeFallbackShim } from '../../browser-client/build.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** Builds `client.js` into `outdir` (index.html is served beside it). */
export async function buildGatewayPage(outdir = here) {
  await build({
    entryPoints: [join(here, 'client.mjs')],
    outfile: join(outdir, 'client.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    alias: { 'nitro-enclave-sdk/seal': resolve(here, '../../../src/seal/index.ts') },
    plugins: [hpkeNodeFallbackShim],
    logLevel: 'silent',
  });
  return { html: join(here, 'index.html'), js: join(outdir, 'client.js') };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await buildGatewayPage(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`built ${out.js}`);
}
