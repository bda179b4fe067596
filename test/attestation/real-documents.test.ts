import { describe, expect, it } from 'vitest';
import { AWS_NITRO_ROOT_G1_SHA256, NitroEnclaveError, parseAttestationDocument, verifyAttestationDocument } from '../../src/attestation/index.js';
import { sha256Hex } from '../../src/attestation/trust.js';
import { accepted, fixture, fixtureText, fixturesDir, manifest } from '../helpers/fixtures.js';

const at = (ms: number) => new Date(ms);

describe.skipIf(!fixturesDir)('real AWS attestation documents (../shared/fixtures/nitro)', () => {
  it('has the AWS root pinned by the fingerprint of the fixture root certificate', async () => {
    const pem = fixtureText('nitro', 'aws-nitro-root.pem');
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    expect(await sha256Hex(der)).toBe(AWS_NITRO_ROOT_G1_SHA256);
  });

  for (const entry of accepted()) {
    describe(entry.file, () => {
      const doc = () => fixture('nitro', entry.file);

      it('verifies at its own timestamp and yields the manifest facts', async () => {
        const facts = await verifyAttestationDocument(doc(), { currentDate: at(entry.timestamp_ms!), allowDebug: true });
        expect(facts.verified).toBe(true);
        expect(facts.moduleId).toBe(entry.module_id);
        expect(facts.timestamp.getTime()).toBe(entry.timestamp_ms);
        expect(facts.pcrsHex[0]).toBe(entry.pcr0);
        expect(Object.keys(facts.pcrs)).toHaveLength(entry.pcr_count!);
        expect(facts.cabundle).toHaveLength(entry.cabundle_length!);
        expect(await sha256Hex(facts.cabundle[0]!)).toBe(AWS_NITRO_ROOT_G1_SHA256);
        expect(facts.debugMode).toBe(entry.debug_mode);
        expect(facts.publicKey?.length ?? null).toBe(entry.public_key_bytes);
        expect(facts.userData?.length ?? null).toBe(entry.user_data_bytes);
        expect(facts.nonce?.length ?? null).toBe(entry.nonce_bytes);
        expect(facts.certificateNotAfter.toISOString()).toBe(new Date(entry.leaf_not_after!).toISOString());
      });

      it('is rejected as expired at today’s date', async () => {
        const err = await verifyAttestationDocument(doc(), { currentDate: new Date('2026-11-29T00:00:00Z') }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(NitroEnclaveError);
        expect((err as NitroEnclaveError).code).toBe('ERR_ATTESTATION_CERT_EXPIRED');
        expect((err as NitroEnclaveError).message).toMatch(/expired at .* \(checked at 2026-11-29T00:00:00\.000Z\)/);
      });

      it('is rejected just before the leaf becomes valid and accepted with enough clock tolerance', async () => {
        const before = new Date(new Date(entry.leaf_not_before!).getTime() - 1000);
        await expect(verifyAttestationDocument(doc(), { currentDate: before })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_CERT_NOT_YET_VALID' });
        await expect(verifyAttestationDocument(doc(), { currentDate: before, clockToleranceMs: 1000, allowDebug: true })).resolves.toMatchObject({ verified: true });
      });

      it('reports the payload encoding and debug mode when parsed without verification', () => {
        const info = parseAttestationDocument(doc());
        expect(info.verified).toBe(false);
        expect(info.indefiniteLengthPayload).toBe(entry.payload_indefinite_map);
        expect(info.debugMode).toBe(entry.debug_mode);
      });
    });
  }

  it('covers both high-S and low-S signatures and an indefinite-length payload', () => {
    expect(accepted().some((e) => e.signature_high_s)).toBe(true);
    expect(accepted().some((e) => !e.signature_high_s)).toBe(true);
    expect(accepted().some((e) => e.payload_indefinite_map)).toBe(true);
  });

  it('rejects the self-signed document (no cabundle, null unprotected header)', async () => {
    const rejected = manifest().filter((e) => e.expect === 'reject');
    expect(rejected.length).toBeGreaterThan(0);
    for (const entry of rejected) {
      await expect(verifyAttestationDocument(fixture('nitro', entry.file), { currentDate: new Date('2024-04-17T12:00:00Z') })).rejects.toMatchObject({
        code: 'ERR_ATTESTATION_MALFORMED',
        message: 'COSE_Sign1 unprotected header must be a map',
      });
    }
  });

  describe('expected values', () => {
    const entry = accepted().find((e) => e.file === 'blocky-nitrite-2024-09-07.cbor')!;
    const debugEntry = accepted().find((e) => e.file === 'blocky-nitrite-debug-2024-09-07.cbor')!;
    const opts = () => ({ currentDate: at(entry.timestamp_ms!) });
    const doc = () => fixture('nitro', entry.file);

    it('accepts the right PCR0 in either hex case and as bytes', async () => {
      await expect(verifyAttestationDocument(doc(), { ...opts(), expectedPcrs: { 0: entry.pcr0!.toUpperCase() } })).resolves.toBeTruthy();
      await expect(verifyAttestationDocument(doc(), { ...opts(), expectedPcrs: { 0: Buffer.from(entry.pcr0!, 'hex') } })).resolves.toBeTruthy();
    });

    it('rejects a different PCR0 and names expected and actual', async () => {
      const wrong = 'ab'.repeat(48);
      await expect(verifyAttestationDocument(doc(), { ...opts(), expectedPcrs: { 0: wrong } })).rejects.toMatchObject({
        code: 'ERR_ATTESTATION_PCR_MISMATCH',
        message: `PCR0 mismatch: expected ${wrong}, document has ${entry.pcr0}`,
      });
    });

    it('rejects an expected PCR the document does not have', async () => {
      await expect(verifyAttestationDocument(doc(), { ...opts(), expectedPcrs: { 20: 'ab'.repeat(48) } })).rejects.toMatchObject({
        code: 'ERR_ATTESTATION_PCR_MISMATCH',
        message: expect.stringMatching(/PCR20 mismatch: .* document has absent/),
      });
    });

    it('matches nonce, user data and public key exactly', async () => {
      const facts = await verifyAttestationDocument(doc(), opts());
      await expect(
        verifyAttestationDocument(doc(), { ...opts(), nonce: facts.nonce!, userData: facts.userData!, publicKey: facts.publicKey! }),
      ).resolves.toBeTruthy();
      const other = new Uint8Array(facts.nonce!);
      other[0]! ^= 1;
      await expect(verifyAttestationDocument(doc(), { ...opts(), nonce: other })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_NONCE_MISMATCH', message: expect.stringMatching(/^nonce mismatch: expected /) });
      await expect(verifyAttestationDocument(doc(), { ...opts(), userData: other })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_USER_DATA_MISMATCH' });
      await expect(verifyAttestationDocument(doc(), { ...opts(), publicKey: other })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_PUBLIC_KEY_MISMATCH' });
    });

    it('requires a field that an expected value names', async () => {
      const noPk = accepted().find((e) => e.public_key_bytes === null)!;
      await expect(
        verifyAttestationDocument(fixture('nitro', noPk.file), { currentDate: at(noPk.timestamp_ms!), publicKey: new Uint8Array([1]), allowDebug: true }),
      ).rejects.toMatchObject({ code: 'ERR_ATTESTATION_PUBLIC_KEY_MISMATCH', message: 'public_key mismatch: expected 01, document has absent' });
    });

    it('enforces maxAgeMs and rejects documents from the future', async () => {
      const t = entry.timestamp_ms!;
      await expect(verifyAttestationDocument(doc(), { currentDate: at(t + 60_000), maxAgeMs: 60_000 })).resolves.toBeTruthy();
      await expect(verifyAttestationDocument(doc(), { currentDate: at(t + 60_001), maxAgeMs: 60_000 })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_STALE', message: expect.stringMatching(/older than maxAgeMs 60000 ms/) });
      await expect(verifyAttestationDocument(doc(), { currentDate: at(t - 500), maxAgeMs: 60_000, clockToleranceMs: 1000 })).resolves.toBeTruthy();
      await expect(verifyAttestationDocument(doc(), { currentDate: at(t - 1500), maxAgeMs: 60_000, clockToleranceMs: 1000 })).rejects.toMatchObject({
        code: 'ERR_ATTESTATION_STALE',
        message: expect.stringMatching(/in the future/),
      });
    });

    it('rejects a debug-mode enclave unless allowDebug is true (the default is false)', async () => {
      const debugDoc = fixture('nitro', debugEntry.file);
      const currentDate = at(debugEntry.timestamp_ms!);
      await expect(verifyAttestationDocument(debugDoc, { currentDate, allowDebug: true })).resolves.toMatchObject({ debugMode: true });
      await expect(verifyAttestationDocument(debugDoc, { currentDate })).rejects.toMatchObject({
        code: 'ERR_ATTESTATION_DEBUG_MODE',
        message: expect.stringMatching(/debug mode .* allowDebug/),
      });
      await expect(verifyAttestationDocument(debugDoc, { currentDate, allowDebug: false })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_DEBUG_MODE' });
      await expect(verifyAttestationDocument(doc(), { ...opts(), allowDebug: false })).resolves.toMatchObject({ debugMode: false });
    });

    it('accepts the real root given explicitly as PEM, DER or fingerprint, and rejects with another anchor', async () => {
      const pem = fixtureText('nitro', 'aws-nitro-root.pem');
      const der = new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64'));
      for (const anchor of [pem, der, AWS_NITRO_ROOT_G1_SHA256.toUpperCase()]) {
        await expect(verifyAttestationDocument(doc(), { ...opts(), trustAnchors: [anchor] })).resolves.toBeTruthy();
      }
      await expect(verifyAttestationDocument(doc(), { ...opts(), trustAnchors: ['00'.repeat(32)] })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_UNTRUSTED_ROOT' });
    });

    it('returns copies that do not alias the input buffer', async () => {
      const input = doc();
      const facts = await verifyAttestationDocument(input, opts());
      const before = facts.pcrsHex[0];
      input.fill(0);
      expect(Buffer.from(facts.pcrs[0]!).toString('hex')).toBe(before);
    });
  });
});
