import { verifyAttestationDocument, type AttestationVerifier, type TrustAnchor, type VerifiedAttestation } from '../attestation/index.js';
import { NitroEnclaveError } from '../errors.js';
import { buildInfo, encodeHeader, MESSAGE_ID_LENGTH, optionalInfo, parseAttestedKey, sha256, type SealSuite, type WebCryptoKey } from './format.js';

/** What the enclave's attestation document must show before anything is sealed to it. */
export interface SealExpectations {
  /** PCR index → expected value (bytes or hex). Required, at least one: sealing to "any enclave" is never meant. */
  pcrs: Readonly<Record<number, Uint8Array | string>>;
  /** The nonce you sent with the attest request; the document must carry it. */
  nonce?: Uint8Array;
  /** Reject a document older than this. At least one of `nonce` and `maxAgeMs` is required. */
  maxAgeMs?: number;
  /** When given, the document's `user_data` must equal it. */
  userData?: Uint8Array;
  /** Leeway for validity windows and future timestamps. Default 0. */
  clockToleranceMs?: number;
  /** Accept a debug-mode enclave (PCR0..2 all zero, memory readable by the parent). Default `false`. */
  allowDebug?: boolean;
}

/** Options of {@link sealToEnclave} and {@link createEnclaveSealer}. */
export interface SealToEnclaveOptions {
  expected: SealExpectations;
  /** Replace the pinned AWS Nitro root (test PKIs): certificates (DER or PEM) or SHA-256 fingerprints. */
  trustAnchors?: readonly TrustAnchor[];
  /** The time at which the document is judged. Default: now. */
  currentDate?: Date;
  /** Application context bound into HPKE `info`; the enclave must open with the same bytes. Default empty. */
  info?: Uint8Array;
  /** A verifier to use (its own certificate cache); default the shared one of `verifyAttestationDocument`. */
  verifier?: AttestationVerifier;
  /**
   * The time written into each message (authenticated), which a receiver with `replayWindowMs`
   * checks against its own clock. Default `() => new Date()`.
   */
  clock?: () => Date;
}

/** The verified enclave key, ready to seal any number of messages. See {@link createEnclaveSealer}. */
export interface EnclaveSealer {
  /** The verified facts of the document the key came from. */
  readonly attestation: VerifiedAttestation;
  /** Seals `plaintext` to the attested key; `info` defaults to the one given at creation. */
  seal(plaintext: Uint8Array, options?: { info?: Uint8Array }): Promise<Uint8Array>;
}

function resolveExpectations(options: SealToEnclaveOptions) {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object with `expected`');
  const { expected } = options;
  if (typeof expected !== 'object' || expected === null) throw new TypeError('options.expected is required: the PCRs (and nonce or maxAgeMs) the enclave must show');
  if (typeof expected.pcrs !== 'object' || expected.pcrs === null || Object.keys(expected.pcrs).length === 0) {
    throw new TypeError('expected.pcrs must name at least one PCR: sealing to any enclave is never meant');
  }
  if (expected.nonce === undefined && expected.maxAgeMs === undefined) {
    throw new TypeError('expected.nonce or expected.maxAgeMs is required, so that a replayed old document is refused');
  }
  if (expected.allowDebug !== undefined && typeof expected.allowDebug !== 'boolean') throw new TypeError('expected.allowDebug must be a boolean');
  const verifyOptions = {
    expectedPcrs: expected.pcrs,
    allowDebug: expected.allowDebug ?? false,
    ...(expected.nonce !== undefined && { nonce: expected.nonce }),
    ...(expected.maxAgeMs !== undefined && { maxAgeMs: expected.maxAgeMs }),
    ...(expected.userData !== undefined && { userData: expected.userData }),
    ...(expected.clockToleranceMs !== undefined && { clockToleranceMs: expected.clockToleranceMs }),
    ...(options.trustAnchors !== undefined && { trustAnchors: options.trustAnchors }),
    ...(options.currentDate !== undefined && { currentDate: options.currentDate }),
  };
  if (options.verifier !== undefined && typeof options.verifier?.verify !== 'function') throw new TypeError('verifier must have a verify() method');
  if (options.clock !== undefined && typeof options.clock !== 'function') throw new TypeError('clock must be a function returning a Date');
  return { verifyOptions, info: optionalInfo(options.info), clock: options.clock ?? (() => new Date()) };
}

/**
 * Verifies an enclave's attestation document against `options.expected`
 * (signature, chain to the AWS root, PCRs, nonce and/or age) and returns a
 * sealer for the HPKE key that the document binds. Nothing can be sealed
 * to a document that did not verify: a failed check rejects with its
 * `ERR_ATTESTATION_*` code, a document without a usable key with
 * `ERR_SEAL_ATTESTED_KEY_INVALID` / `ERR_SEAL_UNSUPPORTED_*`.
 *
 * The document is judged once, at creation: keep a sealer only as long as
 * you would trust that document.
 *
 * @example
 * ```ts
 * import { createEnclaveSealer } from 'nitro-enclave-sdk/seal';
 *
 * const sealer = await createEnclaveSealer(document, { expected: { pcrs: { 0: pcr0Hex }, nonce } });
 * const a = await sealer.seal(new TextEncoder().encode('first secret'));
 * const b = await sealer.seal(new TextEncoder().encode('second secret'));
 * ```
 */
export async function createEnclaveSealer(document: Uint8Array, options: SealToEnclaveOptions): Promise<EnclaveSealer> {
  const { verifyOptions, info: defaultInfo, clock } = resolveExpectations(options);
  const attestation = options.verifier ? await options.verifier.verify(document, verifyOptions) : await verifyAttestationDocument(document, verifyOptions);
  const attestedKey = attestation.publicKey;
  const { suite, publicKey } = parseAttestedKey(attestedKey);
  const keyHash = await sha256(attestedKey!);
  let recipientPublicKey: WebCryptoKey;
  try {
    recipientPublicKey = await suite.hpke.kem.deserializePublicKey(publicKey);
  } catch {
    throw new NitroEnclaveError('ERR_SEAL_ATTESTED_KEY_INVALID', `the document's public_key is not a valid ${suite.name} point`);
  }
  return {
    attestation,
    seal: (plaintext, sealOptions) => sealWith(suite, recipientPublicKey, keyHash, plaintext, sealOptions?.info === undefined ? defaultInfo : optionalInfo(sealOptions.info), clock),
  };
}

async function sealWith(suite: SealSuite, recipientPublicKey: WebCryptoKey, keyHash: Uint8Array, plaintext: Uint8Array, appInfo: Uint8Array, clock: () => Date): Promise<Uint8Array> {
  if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
  const sealedAtMs = clock().getTime();
  const messageId = crypto.getRandomValues(new Uint8Array(MESSAGE_ID_LENGTH));
  const sender = await suite.hpke.createSenderContext({ recipientPublicKey, info: buildInfo(keyHash, appInfo) });
  const header = encodeHeader(suite, keyHash, new Uint8Array(sender.enc), { sealedAtMs, messageId });
  const ciphertext = new Uint8Array(await sender.seal(plaintext, header));
  const out = new Uint8Array(header.length + ciphertext.length);
  out.set(header, 0);
  out.set(ciphertext, header.length);
  return out;
}

/**
 * Verifies an enclave's attestation document (PCRs, freshness through your
 * nonce and/or `maxAgeMs`, the chain to the pinned AWS root) and then
 * encrypts `plaintext` with HPKE (RFC 9180, base mode) to the public key the
 * document binds. Returns the compact sealed message (version, suite ids,
 * key id, sealing time, random message id, enc, ciphertext) that only that enclave can open, with
 * `receiver.open()` from {@link createAttestedReceiver}. Runs in browsers,
 * Deno, Bun, workerd and Node (WebCrypto only).
 *
 * @example
 * ```ts
 * import { sealToEnclave } from 'nitro-enclave-sdk/seal';
 *
 * const nonce = crypto.getRandomValues(new Uint8Array(32));
 * const document = await fetchDocumentFromGateway(nonce); // receiver.attest(nonce) in the enclave
 * const message = await sealToEnclave(document, new TextEncoder().encode('my API key'), {
 *   expected: { pcrs: { 0: 'e72a46ca…' }, nonce, maxAgeMs: 60_000 },
 * });
 * ```
 */
export async function sealToEnclave(document: Uint8Array, plaintext: Uint8Array, options: SealToEnclaveOptions): Promise<Uint8Array> {
  if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
  const sealer = await createEnclaveSealer(document, options);
  return sealer.seal(plaintext);
}
