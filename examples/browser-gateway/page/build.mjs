// Bundles the page's module for browsers with esbuild, from the SDK's sources (src/seal) and
// @hpke/core: `node examples/browser-gateway/page/build.mjs [outdir]`.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleSealPage } from '../../browser-client/build.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** Builds `client.js` into `outdir` (index.html is served beside it). */
export async function buildGatewayPage(outdir = here) {
  const js = await bundleSealPage(join(here, 'client.mjs'), join(outdir, 'client.js'));
  return { html: join(here, 'index.html'), js };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await buildGatewayPage(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`built ${out.js}`);
}
