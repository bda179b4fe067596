// The peer verifier remembers when a cached verdict ends (the earliest not-after over the document's
// chain) by reading only each certificate's validity (certificateNotAfter), instead of parsing each
// whole certificate again. Checked against OpenSSL (node:crypto X509Certificate) on the chains of
// real AWS attestation documents.
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseAttestationDocument } from '../../src/attestation/index.js';
import { certificateNotAfter } from '../../src/tls/certificate.js';
import { fixture, fixturesDir, fixtureText } from '../helpers/fixtures.js';

describe.skipIf(!fixturesDir)('certificateNotAfter on real AWS chains', () => {
  const entries = fixturesDir ? (JSON.parse(fixtureText('nitro', 'manifest.json')) as Array<{ file: string; expect: string }>).filter((e) => e.expect.startsWith('accept')) : [];

  it('reads the same not-after as OpenSSL for the leaf and every CA certificate', () => {
    expect(entries.length).toBeGreaterThan(0);
    let checked = 0;
    for (const { file } of entries) {
      const doc = parseAttestationDocument(fixture('nitro', file));
      for (const der of [doc.certificate, ...doc.cabundle]) {
        expect(certificateNotAfter(der).getTime(), file).toBe(new Date(new X509Certificate(der).validTo).getTime());
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(entries.length * 2);
  });

  it('a DER that is not a certificate is refused with ERR_TLS_ATTESTATION_MALFORMED', () => {
    expect(() => certificateNotAfter(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01))).toThrow(expect.objectContaining({ code: 'ERR_TLS_ATTESTATION_MALFORMED', message: 'the peer certificate cannot be read: no TBSCertificate' }));
  });
});
