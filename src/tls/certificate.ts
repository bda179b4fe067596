import { randomBytes, sign, type KeyObject } from 'node:crypto';
import { NitroEnclaveError } from '../errors.js';
import { Asn1Error, children, content, decodeTime, readNode, TAG, whole, type Asn1Node } from '../internal/asn1.js';
import { bytesEqual } from '../internal/bytes.js';
import { bitString, booleanTrue, explicit, integer, octetString, oid, sequence, set, time, tlv, utf8String } from './der.js';
import { ATTESTATION_EXTENSION_OID } from './wire.js';
import type { createAttestedPeerVerifier } from './peer.js';

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const EXTENSION_OID_CONTENT = oid(ATTESTATION_EXTENSION_OID).subarray(2); // the 2-byte header: tag and a short length

/** What goes into an attested certificate; see {@link issueAttestedCertificate}. */
export interface AttestedCertificateInput {
  /** The TLS key (P-256 or P-384); signs its own certificate. */
  privateKey: KeyObject;
  /** The SubjectPublicKeyInfo DER of that key. */
  spki: Uint8Array;
  /** The NSM document that commits to `spki` (see docs/tls.md "Wire format"). */
  document: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  commonName: string;
  dnsNames: readonly string[];
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(oid(id), ...(critical ? [booleanTrue()] : []), octetString(value));
}

/**
 * A self-signed X.509 v3 certificate (ECDSA with SHA-256) whose non-critical extension
 * {@link ATTESTATION_EXTENSION_OID} holds `OCTET STRING { document }`. Self-signed because no CA
 * can vouch for an enclave's key: the attestation document does, and clients check it instead of
 * a CA chain.
 */
export function issueAttestedCertificate(input: AttestedCertificateInput): Uint8Array {
  const name = sequence(set(sequence(oid('2.5.4.3'), utf8String(input.commonName))));
  const alg = sequence(oid(ECDSA_WITH_SHA256));
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // positive, ≤ 20 octets (RFC 5280 §4.1.2.2)
  const exts = [
    extension('2.5.29.19', true, sequence()), // basicConstraints: not a CA
    extension('2.5.29.15', true, Uint8Array.of(0x03, 0x02, 0x07, 0x80)), // keyUsage: digitalSignature
    extension('2.5.29.37', false, sequence(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))), // serverAuth, clientAuth (mutual mode)
    ...(input.dnsNames.length ? [extension('2.5.29.17', false, sequence(...input.dnsNames.map((n) => tlv(0x82, new TextEncoder().encode(n)))))] : []),
    extension(ATTESTATION_EXTENSION_OID, false, octetString(input.document)),
  ];
  const tbs = sequence(explicit(0, integer(2)), integer(serial), alg, name, sequence(time(input.notBefore), time(input.notAfter)), name, input.spki, explicit(3, sequence(...exts)));
  const signature = sign('sha256', tbs, input.privateKey);
  return sequence(tbs, alg, bitString(new Uint8Array(signature)));
}

/** The parts of a peer certificate the attestation check needs. */
export interface AttestedCertificateParts {
  /** SubjectPublicKeyInfo DER: the key the peer proved it holds in the handshake. */
  spki: Uint8Array;
  /** The attestation document of the extension, or null when the certificate has none. */
  document: Uint8Array | null;
}

function malformed(why: string, cause?: unknown): NitroEnclaveError {
  return new NitroEnclaveError('ERR_TLS_ATTESTATION_MALFORMED', `the peer certificate cannot be read: ${why}`, cause === undefined ? undefined : { cause });
}

/**
 * Reads the SPKI and the attestation extension of a DER certificate. Strict DER; two
 * attestation extensions, or one whose value is not exactly one OCTET STRING, are malformed.
 * Verifies nothing: pass the parts to the attestation verifier (or use {@link createAttestedPeerVerifier}).
 *
 * @example
 * ```ts
 * const { spki, document } = readAttestedCertificate(new Uint8Array(socket.getPeerCertificate().raw));
 * ```
 */
export function readAttestedCertificate(der: Uint8Array): AttestedCertificateParts {
  try {
    const cert = readNode(der, 0, der.length);
    if (cert.tag !== TAG.SEQUENCE || cert.end !== der.length) throw malformed('not one DER SEQUENCE');
    const tbs = children(der, cert)[0];
    if (!tbs || tbs.tag !== TAG.SEQUENCE) throw malformed('no TBSCertificate');
    const fields = children(der, tbs);
    if (fields[0]?.tag !== 0xa0) throw malformed('not an X.509 v3 certificate');
    const spki = fields[6];
    if (!spki || spki.tag !== TAG.SEQUENCE) throw malformed('no SubjectPublicKeyInfo');
    const extsWrapper = fields.find((f) => f.tag === 0xa3);
    let document: Uint8Array | null = null;
    if (extsWrapper) {
      for (const ext of children(der, children(der, extsWrapper)[0] ?? fail('empty extensions'))) {
        const parts = children(der, ext);
        const id = parts[0];
        if (!id || id.tag !== TAG.OID || !bytesEqual(content(der, id), EXTENSION_OID_CONTENT)) continue;
        if (document !== null) throw malformed('two attestation extensions');
        const value = parts[parts.length - 1]!;
        if (value.tag !== TAG.OCTET_STRING) throw malformed('the attestation extension has no OCTET STRING value');
        document = innerOctetString(der, value);
      }
    }
    return { spki: der.slice(spki.start, spki.end), document };
  } catch (err) {
    if (err instanceof NitroEnclaveError) throw err;
    if (err instanceof Asn1Error) throw malformed(err.message, err);
    throw err;
  }
}

function innerOctetString(der: Uint8Array, value: Asn1Node): Uint8Array {
  const inner = readNode(der, value.contentStart, value.contentEnd);
  if (inner.tag !== TAG.OCTET_STRING || inner.end !== value.contentEnd) throw malformed('the attestation extension value is not exactly one OCTET STRING');
  return whole(der, inner).slice(inner.contentStart - inner.start);
}

function fail(why: string): never {
  throw malformed(why);
}

/**
 * The not-after date of a DER certificate, read from its validity field alone. For certificates the
 * attestation verifier has just verified (the document's chain): a cached verdict must end with the
 * chain, and parsing each whole certificate again only for this date cost more than the rest of the
 * cache bookkeeping (bench/tls.mjs, cold handshake).
 */
export function certificateNotAfter(der: Uint8Array): Date {
  const cert = readNode(der, 0, der.length);
  const tbs = children(der, cert)[0];
  if (!tbs || tbs.tag !== TAG.SEQUENCE) throw malformed('no TBSCertificate');
  const fields = children(der, tbs);
  const validity = fields[fields[0]?.tag === 0xa0 ? 4 : 3];
  if (!validity || validity.tag !== TAG.SEQUENCE) throw malformed('no validity');
  const notAfter = children(der, validity)[1];
  if (!notAfter) throw malformed('no notAfter');
  return decodeTime(der, notAfter);
}
