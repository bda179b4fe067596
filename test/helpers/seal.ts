import { createAttestedReceiver, type AttestedReceiverOptions } from '../../src/seal/index.js';
import { createNsmClient } from '../../src/nsm/client.js';
import { createSimulatedEnclave, createSimulatedNsm, type SimulatedEnclaveOptions } from '../../src/testing/index.js';

/** A simulated enclave with an NSM client and an attested receiver on it. */
export async function simulatedReceiver(enclaveOptions: SimulatedEnclaveOptions = {}, receiverOptions: Partial<AttestedReceiverOptions> = {}) {
  const enclave = createSimulatedEnclave(enclaveOptions);
  const nsm = createNsmClient(createSimulatedNsm(enclave));
  const receiver = await createAttestedReceiver({ nsm, ...receiverOptions });
  const expected = (nonce: Uint8Array) => ({ pcrs: { 0: enclave.imageSha384 }, nonce, maxAgeMs: 60_000 });
  return { enclave, nsm, receiver, trustAnchors: [enclave.trustAnchor], expected };
}
