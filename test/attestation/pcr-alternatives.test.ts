// issue 19 §1 (client side): `expectedPcrs` may list several PCR sets; any one matching in full
// admits the document, and a refusal names every admitted set. Same contract on the portable
// (WebCrypto) verifier, the node:crypto one, and the sealing client.
import { describe, expect, it } from 'vitest';
import * as nodeEntry from '../../src/attestation/index.node.js';
import * as portable from '../../src/attestation/index.js';
import { createEnclaveSealer, sealToEnclave } from '../../src/seal/index.js';
import { createSimulatedEnclave, testImagePcr } from '../../src/testing/index.js';
import { simulatedReceiver } from '../helpers/seal.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const v1 = hex(testImagePcr('image v1'));
const v2 = hex(testImagePcr('image v2'));
const v3 = hex(testImagePcr('image v3'));

for (const [name, entry] of [['portable', portable], ['node', nodeEntry]] as const) {
  describe(`expectedPcrs alternatives (${name} verifier)`, () => {
    const enclave = createSimulatedEnclave({ pcrs: { 0: v2 } });
    const doc = enclave.attest();
    const trustAnchors = [enclave.trustAnchor];
    const kernel = hex(enclave.pcrs.get(1)!);

    it('admits a document that matches any one set in full, on the shared function and a verifier', async () => {
      const facts = await entry.verifyAttestationDocument(doc, { trustAnchors, expectedPcrs: [{ 0: v1 }, { 0: v2.toUpperCase(), 1: kernel }] });
      expect(facts.pcrsHex[0]).toBe(v2);
      const verifier = entry.createAttestationVerifier();
      await expect(verifier.verify(doc, { trustAnchors, expectedPcrs: [{ 0: testImagePcr('image v2') }] })).resolves.toMatchObject({ verified: true });
    });

    it('refuses when no set matches in full, naming every admitted set (PCRs are not mixed across sets)', async () => {
      const err = await entry.verifyAttestationDocument(doc, { trustAnchors, expectedPcrs: [{ 0: v1 }, { 0: v2, 1: v3 }] }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'ERR_ATTESTATION_PCR_MISMATCH',
        message:
          `no admitted PCR set matches; admitted 2 sets: set 0: { PCR0=${v1} } (PCR0 mismatch: expected ${v1}, document has ${v2}); ` +
          `set 1: { PCR0=${v2}, PCR1=${v3} } (PCR1 mismatch: expected ${v3}, document has ${kernel})`,
      });
    });

    it('a single set keeps its message; a list of one set reads the same', async () => {
      for (const expectedPcrs of [{ 0: v1 }, [{ 0: v1 }]]) {
        await expect(entry.verifyAttestationDocument(doc, { trustAnchors, expectedPcrs })).rejects.toMatchObject({
          code: 'ERR_ATTESTATION_PCR_MISMATCH',
          message: `PCR0 mismatch: expected ${v1}, document has ${v2}`,
        });
      }
    });

    it('bad lists are TypeErrors: empty list, an empty set, a bad value named by position', async () => {
      await expect(entry.verifyAttestationDocument(doc, { trustAnchors, expectedPcrs: [] })).rejects.toThrow(new TypeError('expectedPcrs: an empty list admits no image; omit the option to skip the PCR check'));
      await expect(entry.verifyAttestationDocument(doc, { trustAnchors, expectedPcrs: [{ 0: v2 }, {}] })).rejects.toThrow(new TypeError('expectedPcrs: every alternative must name at least one PCR'));
      await expect(entry.verifyAttestationDocument(doc, { trustAnchors, expectedPcrs: [{ 0: v2 }, { 0: 'zz' }] })).rejects.toThrow(new TypeError('expectedPcrs[1][0] must be 32, 48 or 64 bytes (or their hex)'));
      await expect(entry.verifyAttestationDocument(doc, { trustAnchors, expectedPcrs: [{ 0: v2 }, null as never] })).rejects.toThrow(new TypeError('expectedPcrs[1] must be an object of index → value'));
    });
  });
}

describe('sealToEnclave / createEnclaveSealer take alternatives', () => {
  it('seals to an enclave admitted by the second set; refuses one admitted by none, naming the sets', async () => {
    const { receiver, trustAnchors } = await simulatedReceiver({ pcrs: { 0: v2 } });
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const document = await receiver.attest(nonce);
    const message = await sealToEnclave(document, new TextEncoder().encode('hi'), { expected: { pcrs: [{ 0: v1 }, { 0: v2 }], nonce }, trustAnchors });
    expect(new TextDecoder().decode(await receiver.open(message))).toBe('hi');
    await expect(createEnclaveSealer(document, { expected: { pcrs: [{ 0: v1 }, { 0: v3 }], nonce }, trustAnchors })).rejects.toMatchObject({
      code: 'ERR_ATTESTATION_PCR_MISMATCH',
      message: expect.stringMatching(/^no admitted PCR set matches; admitted 2 sets: set 0: \{ PCR0=[0-9a-f]{96} \} .*; set 1: \{ PCR0=[0-9a-f]{96} \}/),
    });
  });

  it('an empty list or an empty set among alternatives is a TypeError: sealing to any enclave is never meant', async () => {
    const { receiver, trustAnchors } = await simulatedReceiver();
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const document = await receiver.attest(nonce);
    const msg = 'expected.pcrs must name at least one PCR (in every set of a list): sealing to any enclave is never meant';
    await expect(createEnclaveSealer(document, { expected: { pcrs: [], nonce }, trustAnchors })).rejects.toThrow(new TypeError(msg));
    await expect(createEnclaveSealer(document, { expected: { pcrs: [{ 0: v1 }, {}], nonce }, trustAnchors })).rejects.toThrow(new TypeError(msg));
    await expect(createEnclaveSealer(document, { expected: { pcrs: {}, nonce }, trustAnchors })).rejects.toThrow(new TypeError(msg));
  });
});
