// A message sealed in each runtime (Node, Deno, Bun, workerd, Chromium) opens in a simulated enclave
// in Node, and each runtime refuses a wrong nonce, a wrong PCR0 and an untrusted root with the same codes.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { beforeAll, expect, it } from 'vitest';
// @ts-expect-error: plain ESM example without type declarations
import { hpkeNodeFallbackShim } from '../../examples/browser-client/build.mjs';
import { simulatedReceiver } from '../helpers/seal.js';
import { describeRuntime } from './describe-runtime.js';
import { RUNTIMES, type Script } from './harness.js';

/**
 * Like harness.ts's bundleScript (one browser ES module, failing on any Node import), plus the
 * browser example's shim for @hpke/common's Node <= 18 `import("crypto")` fallback, which is
 * dead code wherever `globalThis.crypto` exists.
 */
async function bundleSealScript(): Promise<Script> {
  const dir = mkdtempSync(join(tmpdir(), 'nes-seal-runtime-'));
  const file = join(dir, 'script.mjs');
  const nodeImports: string[] = [];
  await build({
    entryPoints: [join(import.meta.dirname, 'seal-script.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: file,
    logLevel: 'silent',
    plugins: [
      hpkeNodeFallbackShim as Plugin,
      {
        name: 'refuse-node-builtins',
        setup(b) {
          b.onResolve({ filter: /^node:|^(fs|path|crypto|buffer|util|os|child_process|net|stream|process)$/ }, (args) => {
            nodeImports.push(`${args.path} (from ${args.importer})`);
            return { path: args.path, external: true };
          });
        },
      } satisfies Plugin,
    ],
  });
  if (nodeImports.length) throw new Error(`the portable bundle imports Node built-ins: ${nodeImports.join(', ')}`);
  return { dir, file, code: readFileSync(file, 'utf8') };
}

let script: Script;
let ctx: Awaited<ReturnType<typeof simulatedReceiver>>;
beforeAll(async () => {
  script = await bundleSealScript();
  ctx = await simulatedReceiver();
}, 60_000);

for (const runtime of RUNTIMES) {
  describeRuntime(runtime, () => {
    it(`a message sealed in ${runtime.name} opens in the simulated enclave in Node`, async () => {
      const nonce = crypto.getRandomValues(new Uint8Array(32));
      const document = await ctx.receiver.attest(nonce);
      const plaintext = `sealed in ${runtime.name}`;
      const out = (await runtime.run(script, {
        document: Buffer.from(document).toString('base64'),
        nonce: Buffer.from(nonce).toString('base64'),
        pcr0: ctx.enclave.imageSha384,
        anchor: createHash('sha256').update(ctx.enclave.trustAnchor).digest('hex'),
        plaintext,
        info: `runtime:${runtime.name}`,
      })) as { message: string; wrongNonce: string; wrongPcr: string; defaultRoot: string };
      expect(out).toMatchObject({ wrongNonce: 'ERR_ATTESTATION_NONCE_MISMATCH', wrongPcr: 'ERR_ATTESTATION_PCR_MISMATCH', defaultRoot: 'ERR_ATTESTATION_UNTRUSTED_ROOT' });
      const opened = await ctx.receiver.open(new Uint8Array(Buffer.from(out.message, 'base64')), { info: new TextEncoder().encode(`runtime:${runtime.name}`) });
      expect(new TextDecoder().decode(opened)).toBe(plaintext);
    }, 120_000);
  });
}
