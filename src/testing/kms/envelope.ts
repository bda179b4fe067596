import { createCipheriv, createHash, publicEncrypt, randomBytes, constants, type KeyObject } from 'node:crypto';
import { integer, nullValue, octetString, oid, sequence, set, tlv } from '../der.js';

const EOC = Uint8Array.of(0, 0);
/** A BER constructed element with indefinite length, as KMS writes its outer layers. */
const indefinite = (tag: number, ...parts: Uint8Array[]): Uint8Array => Buffer.concat([Uint8Array.of(tag, 0x80), ...parts, EOC]);

const sha256Alg = () => sequence(oid('2.16.840.1.101.3.4.2.1'), nullValue());

/**
 * Builds a CMS EnvelopedData in the exact shape KMS returns as
 * `CiphertextForRecipient`: BER with indefinite lengths, ContentInfo
 * (envelopedData), EnvelopedData v2, one KeyTransRecipientInfo v2 whose
 * subjectKeyIdentifier is SHA-256 of the recipient's SPKI, rsaesOaep with
 * SHA-256 / MGF1-SHA-256 and explicit NULL parameters, aes-256-cbc with a
 * 16-byte IV, and the content as a constructed [0] of OCTET STRING chunks.
 *
 * @example
 * ```ts
 * const envelope = buildRecipientEnvelope(new Uint8Array(32), ephemeralPublicKey);
 * await decryptCiphertextForRecipient(envelope, ephemeralPrivateKey);
 * ```
 */
export function buildRecipientEnvelope(plaintext: Uint8Array, recipientPublicKey: KeyObject, chunkSize = 1024): Uint8Array {
  const cek = randomBytes(32);
  const iv = randomBytes(16);
  try {
    const cipher = createCipheriv('aes-256-cbc', cek, iv);
    const encrypted = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const wrapped = publicEncrypt({ key: recipientPublicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
    const ski = createHash('sha256').update(recipientPublicKey.export({ format: 'der', type: 'spki' })).digest();
    const oaep = sequence(
      oid('1.2.840.113549.1.1.7'),
      sequence(tlv(0xa0, sha256Alg()), tlv(0xa1, sequence(oid('1.2.840.113549.1.1.8'), sha256Alg()))),
    );
    const recipient = sequence(integer(2), tlv(0x80, ski), oaep, octetString(wrapped));
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < encrypted.length; at += chunkSize) chunks.push(octetString(encrypted.subarray(at, at + chunkSize)));
    const encryptedContentInfo = indefinite(
      0x30,
      oid('1.2.840.113549.1.7.1'),
      sequence(oid('2.16.840.1.101.3.4.1.42'), octetString(iv)),
      indefinite(0xa0, ...chunks),
    );
    const envelopedData = indefinite(0x30, integer(2), set(recipient), encryptedContentInfo);
    return new Uint8Array(indefinite(0x30, oid('1.2.840.113549.1.7.3'), indefinite(0xa0, envelopedData)));
  } finally {
    cek.fill(0);
  }
}
