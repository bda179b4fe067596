// Attestation verification cost against floors measured in the same run, beside evervault's
// wasm verifier on the same document, then the same bench in every other runtime.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAttestationVerifier as portableVerifier } from '../dist/attestation/index.js';
import { createAttestationVerifier as nodeVerifier } from '../dist/attestation/index.node.js';
import { fmt, interleaved, line } from './lib.mjs';
import { benchRuntimes } from './runtimes.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = process.env.NITRO_FIXTURES_DIR ?? resolve(here, '../../shared/fixtures');
// A non-debug AWS document that evervault's verifier also accepts (it refuses the 1024-byte nonce of blocky's).
const FILE = 'sequence-tee-verifier-2025-04.cbor';
const EVERVAULT_QUOTED_MS = '23-24';

/** evervault's wasm verifier, when its npm package is installed; it reads the time from Date.now(). */
async function evervault(doc, pcr0, atMs) {
  let mod;
  try {
    const require = createRequire(import.meta.url);
    const dir = dirname(require.resolve('@evervault/wasm-attestation-bindings/package.json'));
    mod = await import(join(dir, 'index.js'));
    mod.initSync({ module: readFileSync(join(dir, 'index_bg.wasm')) });
  } catch {
    return null;
  }
  const b64 = Buffer.from(doc).toString('base64');
  const realNow = Date.now;
  const realError = console.error;
  const run = () => {
    Date.now = () => atMs; // its certificate checks use the clock; the document is from 2025
    console.error = () => {}; // it logs every failure
    try {
      const pcrs = mod.PCRs.empty();
      pcrs.pcr0 = pcr0;
      return mod.validateAttestationDocPcrs(b64, [pcrs]);
    } finally {
      Date.now = realNow;
      console.error = realError;
    }
  };
  if (run() !== true) throw new Error('evervault did not accept the bench document at its own time');
  return run;
}

export async function benchAttestation() {
  console.log('\n## Attestation verification, Node (real AWS document, verified at its own timestamp)');
  const file = join(fixtures, 'nitro', FILE);
  if (!existsSync(file)) {
    console.log(`skipped: ${file} not found (set NITRO_FIXTURES_DIR)`);
    return null;
  }
  const doc = new Uint8Array(readFileSync(file));
  const entry = JSON.parse(readFileSync(join(fixtures, 'nitro', 'manifest.json'), 'utf8')).find((e) => e.file === FILE);
  const currentDate = new Date(entry.timestamp_ms);

  // Floor: P-384 ECDSA verifies with node:crypto (the fastest verify Node has) over a payload of the document's size.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const data = doc.subarray(0, doc.length - 96);
  const signature = sign('sha384', data, privateKey);
  const warmNode = nodeVerifier();
  const warmPortable = portableVerifier();
  await warmNode.verify(doc, { currentDate });
  await warmPortable.verify(doc, { currentDate });
  const ev = await evervault(doc, entry.pcr0, entry.timestamp_ms);
  const cases = {
    floor1: () => verify('sha384', data, publicKey, signature),
    floor5: () => {
      for (let i = 0; i < 5; i++) verify('sha384', data, publicKey, signature);
    },
    cold: () => nodeVerifier().verify(doc, { currentDate }),
    warm: () => warmNode.verify(doc, { currentDate }),
    coldPortable: () => portableVerifier().verify(doc, { currentDate }),
    warmPortable: () => warmPortable.verify(doc, { currentDate }),
  };
  const r = await interleaved(cases, { rounds: 400, warmup: 40 });
  // evervault blocks for tens of ms per call: measured in rounds of its own, beside our cold path.
  const e = ev ? await interleaved({ evervault: ev, cold: cases.cold }, { rounds: 40, warmup: 3 }) : null;

  line('floor: one node:crypto P-384 verify', fmt(r.floor1.median));
  line('floor: 5 sequential node:crypto P-384 verifies', fmt(r.floor5.median));
  line('cold, node condition (node:crypto): fresh verifier', fmt(r.cold.median), `${(r.cold.median / r.floor5.median).toFixed(2)} x 5-verify floor (goal <= 1.2)`);
  line('warm, node condition: CA chain cached', fmt(r.warm.median), `${(r.warm.median / r.floor1.median).toFixed(2)} x one verify (goal <= 1.5)`);
  line('cold, portable (WebCrypto) in Node', fmt(r.coldPortable.median), `${(r.coldPortable.median / r.floor5.median).toFixed(2)} x 5-verify floor; node condition is ${(r.coldPortable.median / r.cold.median).toFixed(2)} x faster`);
  line('warm, portable (WebCrypto) in Node', fmt(r.warmPortable.median), `${(r.warmPortable.median / r.floor1.median).toFixed(2)} x one verify; node condition is ${(r.warmPortable.median / r.warm.median).toFixed(2)} x faster`);
  if (e) {
    line('evervault wasm verifier (measured, same document)', fmt(e.evervault.median), `ours cold (${fmt(e.cold.median)} in the same rounds) is ${(e.evervault.median / e.cold.median).toFixed(1)} x faster (goal >= 10)`);
  } else {
    line('evervault wasm verifier (QUOTED from issue 13, not measured)', `${EVERVAULT_QUOTED_MS} ms`, `ours cold is ${(23 / r.cold.median).toFixed(1)}-${(24 / r.cold.median).toFixed(1)} x faster`);
  }
  const runtimes = await benchRuntimes({ doc, currentDateMs: entry.timestamp_ms });
  return { floor: r.floor1.median, floor5: r.floor5.median, cold: r.cold.median, warm: r.warm.median, evervault: e?.evervault.median ?? null, runtimes };
}
