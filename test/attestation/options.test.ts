import { describe, expect, it } from 'vitest';
import { createAttestationVerifier, verifyAttestationDocument, type VerifyAttestationOptions } from '../../src/attestation/index.js';
import { createSimulatedEnclave } from '../../src/testing/index.js';

const doc = createSimulatedEnclave().attest();

describe('options are validated before any work, as TypeError', () => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['currentDate string', { currentDate: '2024-01-01' }, /currentDate must be a valid Date/],
    ['currentDate invalid', { currentDate: new Date('nope') }, /currentDate must be a valid Date/],
    ['clockToleranceMs negative', { clockToleranceMs: -1 }, /clockToleranceMs must be a non-negative/],
    ['maxAgeMs NaN', { maxAgeMs: Number.NaN }, /maxAgeMs must be a non-negative/],
    ['maxAge (the 0.1 name)', { maxAge: 60_000 }, /maxAge was renamed maxAgeMs/],
    ['clockTolerance (the 0.1 name)', { clockTolerance: 1000 }, /clockTolerance was renamed clockToleranceMs/],
    ['expectedPcrs index 32', { expectedPcrs: { 32: 'aa'.repeat(48) } }, /32 is not a PCR index/],
    ['expectedPcrs bad hex', { expectedPcrs: { 0: 'zz'.repeat(48) } }, /expectedPcrs\[0\] must be 32, 48 or 64 bytes/],
    ['expectedPcrs wrong length', { expectedPcrs: { 0: 'aa'.repeat(47) } }, /expectedPcrs\[0\]/],
    ['nonce as string', { nonce: 'abc' }, /nonce must be a Uint8Array/],
    ['trustAnchors empty', { trustAnchors: [] }, /trustAnchors must be a non-empty array/],
    ['trustAnchors junk', { trustAnchors: ['not a cert'] }, /trustAnchors entries must be/],
    ['allowDebug string', { allowDebug: 'no' }, /allowDebug must be a boolean/],
    ['options null', null, /options must be an object/],
  ];
  for (const [name, options, message] of bad) {
    it(name, async () => {
      await expect(verifyAttestationDocument(doc, options as VerifyAttestationOptions)).rejects.toThrow(TypeError);
      await expect(verifyAttestationDocument(doc, options as VerifyAttestationOptions)).rejects.toThrow(message);
    });
  }

  it('rejects a document that is not a Uint8Array with TypeError', async () => {
    await expect(verifyAttestationDocument('abc' as unknown as Uint8Array)).rejects.toThrow(TypeError);
  });

  it('validates the verifier configuration', () => {
    expect(() => createAttestationVerifier({ cacheSize: -1 })).toThrow(TypeError);
  });
});
