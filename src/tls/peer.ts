import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { createAttestationVerifier, type AttestationVerifier, type ExpectedPcrs, type TrustAnchor, type VerifiedAttestation } from '../attestation/index.node.js';
import { NitroEnclaveError } from '../errors.js';
import { certificateNotAfter, readAttestedCertificate } from './certificate.js';
import { NO_CONTEXT, certificateBinding, SESSION_EXPORTER_LABEL, SESSION_EXPORTER_LENGTH, sessionBinding } from './wire.js';

/** Default `maxAgeMs` of a peer's document: twice the server's default re-attestation interval. */
export const DEFAULT_MAX_AGE_MS = 10 * 60_000;

/** What an attested peer must show; options of every client and of mutual mode. */
export interface AttestedPeerOptions {
  /** PCR set (index → bytes or hex), or a list of alternative sets. Required: "any enclave" is never meant. */
  expectedPcrs: ExpectedPcrs;
  /** Refuse a document older than this. Default {@link DEFAULT_MAX_AGE_MS}. */
  maxAgeMs?: number;
  /** Replace the pinned AWS Nitro root (test PKIs). */
  trustAnchors?: readonly TrustAnchor[];
  /** Leeway for validity windows and future timestamps. Default 0. */
  clockToleranceMs?: number;
  /** Accept a debug-mode enclave. Default `false`. */
  allowDebug?: boolean;
  /** The time source. Default `() => new Date()`. */
  clock?: () => Date;
  /** The verifier (its certificate cache). Default: a new node:crypto verifier per peer verifier. */
  verifier?: AttestationVerifier;
  /** Certificates whose check passed, remembered by SHA-256 of the DER (age and validity are re-checked on every use). Default 256; 0 turns it off. */
  cacheSize?: number;
}

/** Checks peers' attested certificates; see {@link createAttestedPeerVerifier}. */
export interface AttestedPeerVerifier {
  /** The PCR sets this verifier admits (as given to {@link createAttestedPeerVerifier}). */
  readonly expectedPcrs: ExpectedPcrs;
  /** Verifies a DER certificate the peer proved it holds the key of (it completed a TLS handshake with it, or resumed a session of one that did). */
  verifyCertificate(der: Uint8Array): Promise<VerifiedAttestation>;
  /** Verifies the certificate of a connected TLS socket. */
  verifySocket(socket: TLSSocket): Promise<VerifiedAttestation>;
  /**
   * The per-session check: `document` must verify like a certificate's and bind `nonce` and
   * this session's exported keying material (docs/tls.md "Wire format"). Never cached.
   */
  verifySessionDocument(socket: TLSSocket, certificate: Uint8Array, document: Uint8Array, nonce: Uint8Array): Promise<VerifiedAttestation>;
}

interface Cached {
  facts: VerifiedAttestation;
  /** Earliest not-after over the document's chain: past it the cached verdict no longer holds. */
  chainNotAfter: number;
}

const TRANSLATED = {
  ERR_ATTESTATION_PCR_MISMATCH: 'ERR_TLS_ATTESTATION_PCR_MISMATCH',
  ERR_ATTESTATION_STALE: 'ERR_TLS_ATTESTATION_STALE',
  ERR_ATTESTATION_USER_DATA_MISMATCH: 'ERR_TLS_ATTESTATION_KEY_MISMATCH',
} as const;

/** The one place an `ERR_ATTESTATION_*` becomes an `ERR_TLS_ATTESTATION_*`; the original is the cause. */
export function translate(err: unknown, what: string): unknown {
  if (!(err instanceof NitroEnclaveError) || !err.code.startsWith('ERR_ATTESTATION_')) return err;
  const code = TRANSLATED[err.code as keyof typeof TRANSLATED] ?? 'ERR_TLS_ATTESTATION_INVALID';
  const detail = code === 'ERR_TLS_ATTESTATION_KEY_MISMATCH' ? "it does not commit to the peer's TLS key" : `${err.code}: ${err.message}`;
  return new NitroEnclaveError(code, `${what} refused: ${detail}`, { cause: err });
}

function nonNegative(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new TypeError(`${name} must be a non-negative finite number`);
  return value;
}

/**
 * Creates the check every attested-TLS client runs on a new connection: the peer certificate's
 * extension holds an attestation document that verifies to the AWS root (or `trustAnchors`),
 * shows one admitted PCR set, is at most `maxAgeMs` old, and commits to the certificate's key
 * (the key the TLS handshake proved the peer holds). A passing certificate is remembered, so a
 * later connection to the same server costs a hash and two comparisons; age and chain validity
 * are checked again every time, and a failure is never remembered.
 *
 * @example
 * ```ts
 * const peers = createAttestedPeerVerifier({ expectedPcrs: { 0: pcr0Hex } });
 * const socket = tls.connect({ host, port, rejectUnauthorized: false });
 * socket.once('secureConnect', () => peers.verifySocket(socket).then(() => socket.write('hi'), (err) => socket.destroy(err)));
 * ```
 */
export function createAttestedPeerVerifier(options: AttestedPeerOptions): AttestedPeerVerifier {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object with `expectedPcrs`');
  const { expectedPcrs } = options;
  const sets: readonly unknown[] = Array.isArray(expectedPcrs) ? expectedPcrs : [expectedPcrs];
  if (sets.length === 0 || sets.some((s) => typeof s !== 'object' || s === null || Object.keys(s).length === 0)) {
    throw new TypeError('expectedPcrs must name at least one PCR (in every set of a list): trusting any enclave is never meant');
  }
  const maxAgeMs = nonNegative('maxAgeMs', options.maxAgeMs, DEFAULT_MAX_AGE_MS);
  const clockToleranceMs = nonNegative('clockToleranceMs', options.clockToleranceMs, 0);
  const clock = options.clock ?? (() => new Date());
  if (typeof clock !== 'function') throw new TypeError('clock must be a function returning a Date');
  const cacheSize = options.cacheSize ?? 256;
  if (!Number.isInteger(cacheSize) || cacheSize < 0) throw new TypeError('cacheSize must be a non-negative integer');
  if (options.verifier !== undefined && typeof options.verifier?.verify !== 'function') throw new TypeError('verifier must have a verify() method');
  const verifier = options.verifier ?? createAttestationVerifier();
  const cache = new Map<string, Cached>();

  function fresh(entry: Cached, now: Date): void {
    const stamp = entry.facts.timestamp.getTime();
    if (!(now.getTime() - stamp <= maxAgeMs) || !(stamp - now.getTime() <= clockToleranceMs)) {
      throw new NitroEnclaveError('ERR_TLS_ATTESTATION_STALE', `the peer's attestation refused: ERR_ATTESTATION_STALE: timestamp ${entry.facts.timestamp.toISOString()} is older than maxAgeMs ${maxAgeMs} ms at ${now.toISOString()}`);
    }
    if (!(now.getTime() <= entry.chainNotAfter + clockToleranceMs)) {
      throw new NitroEnclaveError('ERR_TLS_ATTESTATION_INVALID', `the peer's attestation refused: ERR_ATTESTATION_CERT_EXPIRED: its certificate chain expired at ${new Date(entry.chainNotAfter).toISOString()}`);
    }
  }

  async function verifyCertificate(der: Uint8Array): Promise<VerifiedAttestation> {
    if (!(der instanceof Uint8Array) || der.length === 0) throw new NitroEnclaveError('ERR_TLS_ATTESTATION_MISSING', 'the peer presented no certificate');
    const now = clock();
    const id = cacheSize > 0 ? createHash('sha256').update(der).digest('base64') : '';
    const hit = cacheSize > 0 ? cache.get(id) : undefined;
    if (hit) {
      fresh(hit, now);
      return hit.facts;
    }
    const { spki, document } = readAttestedCertificate(der);
    if (document === null) throw new NitroEnclaveError('ERR_TLS_ATTESTATION_MISSING', 'the peer certificate carries no attestation document (extension 2.25.155067532736168197417529046374556437207)');
    let facts: VerifiedAttestation;
    try {
      facts = await verifier.verify(document, {
        expectedPcrs: expectedPcrs,
        maxAgeMs,
        clockToleranceMs,
        currentDate: now,
        userData: certificateBinding(spki),
        ...(options.trustAnchors !== undefined && { trustAnchors: options.trustAnchors }),
        ...(options.allowDebug !== undefined && { allowDebug: options.allowDebug }),
      });
    } catch (err) {
      throw translate(err, "the peer's attestation");
    }
    // A certificate's document carries only the binding: one with a public_key or a nonce was
    // made for another purpose (e.g. an HPKE receiver's document), whatever its user_data says.
    if (facts.publicKey !== null || facts.nonce !== null) throw foreignDocument("the peer's attestation", facts.publicKey !== null ? 'public_key' : 'nonce');
    if (cacheSize > 0) {
      const chainNotAfter = Math.min(facts.certificateNotAfter.getTime(), ...facts.cabundle.map((c) => certificateNotAfter(c).getTime()));
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(id, { facts, chainNotAfter });
    }
    return facts;
  }

  function peerCertificate(socket: TLSSocket): Uint8Array {
    // Not `getPeerCertificate(true)`: only the leaf's DER is needed, and the detailed form walks and
    // converts the issuer chain too (0.35 ms of a cold handshake, bench/tls.mjs).
    const cert = socket.getPeerCertificate();
    const raw = cert && typeof cert === 'object' && 'raw' in cert ? cert.raw : undefined;
    if (!raw || raw.length === 0) throw new NitroEnclaveError('ERR_TLS_ATTESTATION_MISSING', 'the peer presented no certificate');
    return new Uint8Array(raw);
  }

  return {
    expectedPcrs,
    verifyCertificate,
    async verifySocket(socket) {
      return verifyCertificate(peerCertificate(socket));
    },
    async verifySessionDocument(socket, certificate, document, nonce) {
      const { spki } = readAttestedCertificate(certificate);
      if (typeof socket.exportKeyingMaterial !== 'function') {
        // Deno's node:tls (2.x) has no exporter: without it the session cannot be bound.
        throw new NitroEnclaveError('ERR_TLS_ATTESTATION_SESSION', "the session attestation cannot be checked: this runtime's node:tls has no exportKeyingMaterial (RFC 5705)");
      }
      const ekm = new Uint8Array(socket.exportKeyingMaterial(SESSION_EXPORTER_LENGTH, SESSION_EXPORTER_LABEL, NO_CONTEXT));
      let facts: VerifiedAttestation;
      try {
        facts = await verifier.verify(document, {
          expectedPcrs,
          maxAgeMs,
          clockToleranceMs,
          currentDate: clock(),
          nonce,
          userData: sessionBinding(spki, nonce, ekm),
          ...(options.trustAnchors !== undefined && { trustAnchors: options.trustAnchors }),
          ...(options.allowDebug !== undefined && { allowDebug: options.allowDebug }),
        });
      } catch (err) {
        const translated = translate(err, 'the session attestation');
        if (translated instanceof NitroEnclaveError && (translated.code === 'ERR_TLS_ATTESTATION_KEY_MISMATCH' || (err as NitroEnclaveError).code === 'ERR_ATTESTATION_NONCE_MISMATCH')) {
          throw new NitroEnclaveError('ERR_TLS_ATTESTATION_SESSION', 'the session attestation refused: it does not bind this TLS session and nonce', { cause: err });
        }
        throw translated;
      }
      if (facts.publicKey !== null) throw foreignDocument('the session attestation', 'public_key');
      return facts;
    },
  };
}

function foreignDocument(what: string, field: 'public_key' | 'nonce'): NitroEnclaveError {
  return new NitroEnclaveError('ERR_TLS_ATTESTATION_KEY_MISMATCH', `${what} refused: the document has a ${field}, so it was not made for this binding`);
}
