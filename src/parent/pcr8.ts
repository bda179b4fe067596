import { createHash, X509Certificate } from 'node:crypto';

/**
 * PCR8 of every EIF signed with `certificate`, as nitro-cli prints it
 * (`build-enclave --signing-certificate`, `pcr --signing-certificate`): the
 * image-format's extend of a zero register with the SHA-384 of the
 * certificate's DER, `SHA-384(48 zero bytes ‖ SHA-384(DER))`, in lower-case
 * hex. Takes the PEM text or bytes (the first certificate, as nitro-cli's
 * `X509::from_pem` does) or the DER. Throws `TypeError` when it is not a
 * certificate.
 *
 * Use it in `buildKeyPolicy({ images: [{ pcr8 }] })` to admit every image
 * signed with that certificate, so a rebuild needs no policy change.
 *
 * @example
 * ```ts
 * const pcr8 = pcr8FromCertificate(readFileSync('cert.pem'));
 * buildKeyPolicy({ accountId, enclaveRole, images: [{ pcr8 }] });
 * ```
 */
export function pcr8FromCertificate(certificate: string | Uint8Array): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(typeof certificate === 'string' ? certificate : Buffer.from(certificate.buffer, certificate.byteOffset, certificate.byteLength));
  } catch {
    throw new TypeError('certificate must be an X.509 certificate in PEM or DER');
  }
  const contentDigest = createHash('sha384').update(cert.raw).digest();
  return createHash('sha384').update(Buffer.alloc(48)).update(contentDigest).digest('hex');
}
