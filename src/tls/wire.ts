// The attested-TLS wire format, every constant of docs/tls.md "Wire format" (a test reads the doc
// and compares it with these). Changing one is a new version of the format.
import { createHash } from 'node:crypto';

/**
 * The X.509 extension that carries the NSM attestation document. A UUID OID under the `2.25`
 * arc (ITU-T X.667: an OID anyone may form from a UUID they generated, no registration), from
 * UUID 74a8eba3-ea0e-47f9-921d-98ef8c290ad7: private to nitro-enclave-sdk, not registered anywhere.
 */
export const ATTESTATION_EXTENSION_OID = '2.25.155067532736168197417529046374556437207';

/** Prefix of the document's `user_data` in a certificate binding (ASCII, then one zero byte). */
export const CERTIFICATE_BINDING_LABEL = 'nitro-enclave-sdk/tls certificate v1';

/** Prefix of the document's `user_data` in a per-session binding (ASCII, then one zero byte). */
export const SESSION_BINDING_LABEL = 'nitro-enclave-sdk/tls session v1';

/** RFC 5705 exporter label of the per-session binding ("EXPERIMENTAL" prefix: not IANA-registered). */
export const SESSION_EXPORTER_LABEL = 'EXPERIMENTAL-nitro-enclave-sdk-tls-session-v1';

/** Bytes of keying material exported for the session binding (no context value). */
export const SESSION_EXPORTER_LENGTH = 32;

/** The exporter's context argument: none (RFC 5705 "no context"; in TLS 1.3 the same as empty). */
export const NO_CONTEXT = undefined as unknown as Buffer;

/** Attested connections are TLS 1.3 only: its exporter is bound to the full handshake (RFC 8446 §7.5). */
export const MIN_TLS_VERSION = 'TLSv1.3';

/** Bytes of the client's session nonce. */
export const SESSION_NONCE_LENGTH = 32;

/** Where an attested server publishes its current document (and, with `?nonce=`, a session document). */
export const WELL_KNOWN_PATH = '/.well-known/nitro-enclave-attestation';

/** Media type of the document served at {@link WELL_KNOWN_PATH}: the COSE_Sign1 bytes as the NSM made them. */
export const DOCUMENT_MEDIA_TYPE = 'application/cbor';

const encoder = new TextEncoder();

function labelled(label: string, ...parts: Uint8Array[]): Uint8Array {
  const prefix = encoder.encode(label);
  const out = new Uint8Array(prefix.length + 1 + parts.reduce((n, p) => n + p.length, 0));
  out.set(prefix, 0);
  let at = prefix.length + 1; // the zero byte ends the label: no label is a prefix of another's bytes
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** SHA-384 of a SubjectPublicKeyInfo DER. */
export function spkiSha384(spki: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(spki).digest());
}

/**
 * `user_data` of a certificate's document: label ‖ 0x00 ‖ SHA-384(SPKI DER).
 *
 * @example
 * ```ts
 * await verifyAttestationDocument(document, { expectedPcrs, userData: certificateBinding(spkiOfTheTlsPeer) });
 * ```
 */
export function certificateBinding(spki: Uint8Array): Uint8Array {
  return labelled(CERTIFICATE_BINDING_LABEL, spkiSha384(spki));
}

/**
 * `user_data` of a session document: label ‖ 0x00 ‖ SHA-384(SPKI DER) ‖ nonce (32) ‖ exported keying material (32).
 *
 * @example
 * ```ts
 * const ekm = socket.exportKeyingMaterial(SESSION_EXPORTER_LENGTH, SESSION_EXPORTER_LABEL);
 * const userData = sessionBinding(spki, nonce, ekm);
 * ```
 */
export function sessionBinding(spki: Uint8Array, nonce: Uint8Array, keyingMaterial: Uint8Array): Uint8Array {
  if (nonce.length !== SESSION_NONCE_LENGTH || keyingMaterial.length !== SESSION_EXPORTER_LENGTH) throw new RangeError('nonce and keying material are 32 bytes');
  return labelled(SESSION_BINDING_LABEL, spkiSha384(spki), nonce, keyingMaterial);
}
