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
import { bundleScript, RUNTIMES, type Script } from './harness.js';


let script: Script;
let ctx: Awaited<ReturnType<typeof simulatedReceiver>>;
beforeAll(async () => {
  // @hpke/common keeps a Node <= 18 `import("crypto")` fallback, dead wherever globalThis.crypto exists.
  script = await bundleScript(join(import.meta.dirname, 'seal-script.ts'), { plugins: [hpkeNodeFallbackShim as Plugin] });
  // Replay protection on: the version 2 time and id written in each runtime are read and checked in Node.
  ctx = await simulatedReceiver({}, { replayWindowMs: 300_000 });
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
      const message = new Uint8Array(Buffer.from(out.message, 'base64'));
      expect(message[0]).toBe(2);
      await expect(ctx.receiver.open(message, { info: new TextEncoder().encode(`runtime:${runtime.name}`) })).rejects.toMatchObject({ code: 'ERR_SEAL_REPLAYED' });
    }, 120_000);
  });
}
