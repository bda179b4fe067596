// Trust anchors are parsed (and their key imported) once per backend and shared by every verifier
// (src/attestation/chain.ts): a fresh verifier must not import the pinned root's key again, and the
// sharing must never let a root through that the verification's own anchors do not name.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAttestationVerifier as nodeVerifier } from '../../src/attestation/index.node.js';
import { createAttestationVerifier as portableVerifier } from '../../src/attestation/index.js';
import { nodeCryptoBackend } from '../../src/attestation/node-crypto.js';
import { webCryptoBackend } from '../../src/attestation/webcrypto.js';
import { fixture, fixturesDir, manifest } from '../helpers/fixtures.js';

const FILE = 'sequence-tee-verifier-2025-04.cbor';

describe.skipIf(!fixturesDir)('shared trust anchors', () => {
  afterEach(() => vi.restoreAllMocks());
  const load = () => {
    const entry = manifest().find((e) => e.file === FILE)!;
    return { doc: fixture('nitro', FILE), currentDate: new Date(entry.timestamp_ms!) };
  };

  for (const [name, create, backend] of [
    ['node:crypto', nodeVerifier, nodeCryptoBackend],
    ['WebCrypto', portableVerifier, webCryptoBackend],
  ] as const) {
    it(`${name}: a fresh verifier imports 4 keys for a 5-certificate chain once the root was seen`, async () => {
      const { doc, currentDate } = load();
      await create().verify(doc, { currentDate });
      const imports = vi.spyOn(backend, 'importEcPoint');
      await create().verify(doc, { currentDate });
      expect(imports).toHaveBeenCalledTimes(4);
    });

    it(`${name}: the link from the shared root starts its verify before any of the chain's own keys is imported`, async () => {
      const { doc, currentDate } = load();
      await create().verify(doc, { currentDate });
      const order: string[] = [];
      const real = { import: backend.importEcPoint, verify: backend.ecdsaVerify, der: backend.ecdsaVerifyDer };
      vi.spyOn(backend, 'importEcPoint').mockImplementation((...args) => (order.push('import'), real.import.apply(backend, args)));
      vi.spyOn(backend, 'ecdsaVerify').mockImplementation((...args) => (order.push('verify'), real.verify.apply(backend, args)));
      if (real.der) vi.spyOn(backend, 'ecdsaVerifyDer').mockImplementation((...args) => (order.push('verify'), real.der!.apply(backend, args)));
      await create().verify(doc, { currentDate });
      expect(order).toEqual(['verify', 'import', 'import', 'import', 'import', 'verify', 'verify', 'verify', 'verify']);
    });

    it(`${name}: a root shared by an earlier verifier is still refused by a verifier that does not trust it`, async () => {
      const { doc, currentDate } = load();
      await create().verify(doc, { currentDate });
      const other = 'ab'.repeat(32);
      await expect(create().verify(doc, { currentDate, trustAnchors: [other] })).rejects.toMatchObject({
        code: 'ERR_ATTESTATION_UNTRUSTED_ROOT',
        message: `cabundle[0] (SHA-256 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b) is not a trusted root; expected one of: ${other}`,
      });
    });
  }
});
