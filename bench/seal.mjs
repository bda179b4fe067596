// Attested sealing: sealing to a verified enclave key against a bare HPKE seal with the
// same library, suite and plaintext sizes, measured interleaved in the same run.
import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { createAttestationVerifier } from '../dist/attestation/index.js';
import { createNsmClient } from '../dist/nsm/index.js';
import { createAttestedReceiver, createEnclaveSealer, sealToEnclave } from '../dist/seal/index.js';
import { createSimulatedEnclave, createSimulatedNsm } from '../dist/testing/index.js';
import { repeated, row } from './lib.mjs';

export async function benchSeal() {
  console.log('\n## Attested sealing (HPKE DHKEM(P-256)/HKDF-SHA256/AES-256-GCM, @hpke/core)');
  const enclave = createSimulatedEnclave();
  const receiver = await createAttestedReceiver({ nsm: createNsmClient(createSimulatedNsm(enclave)) });
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const document = await receiver.attest(nonce);
  const options = { expected: { pcrs: { 0: enclave.imageSha384 }, nonce, maxAgeMs: 600_000 }, trustAnchors: [enclave.trustAnchor] };
  const sealer = await createEnclaveSealer(document, options);

  // The floor: the library's own single-shot seal to the same public key (key bytes after the 7-byte header).
  const suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
  const recipientPublicKey = await suite.kem.deserializePublicKey(receiver.publicKey.subarray(7));
  const info = new Uint8Array(26 + 32);
  const aad = new Uint8Array(39 + 65); // the version 2 header (with sealed-at and message id) and enc
  const warmVerifier = createAttestationVerifier();
  await warmVerifier.verify(document, { trustAnchors: options.trustAnchors });

  for (const size of [64, 4096, 65536]) {
    const plaintext = crypto.getRandomValues(new Uint8Array(size));
    const r = await repeated(
      {
        floor: () => suite.seal({ recipientPublicKey, info }, plaintext, aad),
        sealer: () => sealer.seal(plaintext),
      },
      { reps: 5, rounds: 80, warmup: 20 },
    );
    row(`floor: bare HPKE seal, ${size} B`, r.floor);
    row(`sealToEnclave after verification, ${size} B`, r.sealer, { vs: r.floor, goal: { max: 1.3 }, name: `sealToEnclave after verification, ${size} B (x bare HPKE)` });
  }
  // For scale: the whole call with verification (warm verifier: the CA chain is cached).
  const plaintext = new Uint8Array(64);
  const whole = await repeated({ sealToEnclave: () => sealToEnclave(document, plaintext, { ...options, verifier: warmVerifier }) }, { reps: 5, rounds: 20, warmup: 5 });
  row('sealToEnclave with verification (warm verifier), 64 B', whole.sealToEnclave);
}
