// Attestation verification cost against a floor measured in the same run.
import { existsSync, readFileSync } from 'node:fs';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAttestationVerifier } from '../dist/attestation/index.js';
import { fmt, interleaved, line } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = process.env.NITRO_FIXTURES_DIR ?? resolve(here, '../../shared/fixtures');

export async function benchAttestation() {
  console.log('\n## Attestation verification (real AWS document, verified at its own timestamp)');
  const file = join(fixtures, 'nitro', 'blocky-nitrite-2024-09-07.cbor');
  if (!existsSync(file)) {
    console.log(`skipped: ${file} not found (set NITRO_FIXTURES_DIR)`);
    return null;
  }
  const doc = new Uint8Array(readFileSync(file));
  const currentDate = new Date(1725719859545);

  // Floor: one P-384 ECDSA verify with node:crypto over a payload of the document's size.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const data = doc.subarray(0, doc.length - 96);
  const signature = sign('sha384', data, privateKey);
  const warmVerifier = createAttestationVerifier();
  await warmVerifier.verify(doc, { currentDate });
  const r = await interleaved(
    {
      floor: () => verify('sha384', data, publicKey, signature),
      cold: () => createAttestationVerifier().verify(doc, { currentDate }),
      warm: () => warmVerifier.verify(doc, { currentDate }),
    },
    { rounds: 600, warmup: 50 },
  );
  const [floor, cold, warm] = [r.floor, r.cold, r.warm];

  line('floor: one node:crypto P-384 verify', fmt(floor.median));
  line('cold: fresh verifier (parse + 4 chain verifies + COSE)', fmt(cold.median), `${(cold.median / floor.median).toFixed(2)} x floor (goal <= 5 x 1.2 = 6.0)`);
  line('warm: chain seen before (validity still checked)', fmt(warm.median), `${(warm.median / floor.median).toFixed(2)} x floor (goal <= 1.5)`);
  return { floor: floor.median, cold: cold.median, warm: warm.median };
}
