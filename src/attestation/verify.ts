import { NitroEnclaveError } from '../errors.js';
import { bytesEqual, copyBytes, fromHex, toHex } from '../internal/bytes.js';
import { ChainCache, verifyChain } from './chain.js';
import { verifyCoseSign1 } from './cose-sign1.js';
import { decodeDocument } from './document.js';
import { AWS_NITRO_ROOT_G1_SHA256, anchorFingerprints, type TrustAnchor } from './trust.js';
import { webCryptoBackend, type CryptoBackend } from './webcrypto.js';

/** Options of {@link verifyAttestationDocument}. All optional; setting an expected value makes that field required. */
export interface VerifyAttestationOptions {
  /** The time at which certificates must be valid and freshness is judged. Default: now. */
  currentDate?: Date;
  /** Milliseconds of leeway for validity windows and future timestamps. Default 0. */
  clockToleranceMs?: number;
  /** Reject a document whose `timestamp` is older than this many ms (or from the future beyond `clockToleranceMs`). */
  maxAgeMs?: number;
  /**
   * PCR index → expected value (bytes, or hex in either case). Each listed PCR must match exactly.
   * A list of such sets admits several images (a rollout: old and new build): the document
   * passes when every PCR of at least one set matches.
   */
  expectedPcrs?: ExpectedPcrs;
  /** When given, the document's `nonce` must be present and equal. */
  nonce?: Uint8Array;
  /** When given, the document's `public_key` must be present and equal. */
  publicKey?: Uint8Array;
  /** When given, the document's `user_data` must be present and equal. */
  userData?: Uint8Array;
  /** Replace the pinned AWS root (test PKIs): certificates (DER or PEM) or SHA-256 fingerprints. */
  trustAnchors?: readonly TrustAnchor[];
  /**
   * Accept a debug-mode enclave (PCR0, PCR1, PCR2 all zero: anyone can run that image and read
   * its memory). Default `false`: such documents fail with `ERR_ATTESTATION_DEBUG_MODE`.
   */
  allowDebug?: boolean;
}

/** One set of PCR values (index → bytes or hex), all of which must match. */
export type PcrSet = Readonly<Record<number, Uint8Array | string>>;

/** A PCR set, or a non-empty list of alternative sets of which any one must match in full. */
export type ExpectedPcrs = PcrSet | readonly PcrSet[];

/** Facts from an attestation document whose signature, chain and requested values all checked out. */
export interface VerifiedAttestation {
  readonly verified: true;
  readonly moduleId: string;
  readonly digest: 'SHA384';
  readonly timestamp: Date;
  readonly pcrs: Readonly<Record<number, Uint8Array>>;
  /** The same PCRs as lower-case hex. */
  readonly pcrsHex: Readonly<Record<number, string>>;
  /** The leaf (signing) certificate, DER. */
  readonly certificate: Uint8Array;
  /** The CA certificates, root first, DER. */
  readonly cabundle: readonly Uint8Array[];
  /** Not-after of the leaf certificate: the document cannot verify past it. */
  readonly certificateNotAfter: Date;
  readonly publicKey: Uint8Array | null;
  readonly userData: Uint8Array | null;
  readonly nonce: Uint8Array | null;
  readonly debugMode: boolean;
}

interface ResolvedOptions {
  currentDate: Date | null;
  clockToleranceMs: number;
  maxAgeMs: number | null;
  /** Alternatives: the document must match every entry of at least one map. Empty: no PCR check. */
  expectedPcrs: Array<Map<number, Uint8Array>>;
  nonce: Uint8Array | null;
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  anchors: Set<string>;
  allowDebug: boolean;
}

const DEFAULT_ANCHORS = new Set([AWS_NITRO_ROOT_G1_SHA256]);

function nonNegative(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new TypeError(`${name} must be a non-negative finite number of milliseconds`);
  return value;
}

function optionalBytes(name: string, value: unknown): Uint8Array | null {
  if (value === undefined) return null;
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  return copyBytes(value);
}

async function resolveOptions(options: VerifyAttestationOptions | undefined, backend: CryptoBackend): Promise<ResolvedOptions> {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  // The 0.1 names would be silently ignored, turning off the freshness check: refuse them.
  for (const old of ['maxAge', 'clockTolerance'] as const) {
    if (old in options) throw new TypeError(`${old} was renamed ${old}Ms in 0.2`);
  }
  const { currentDate, clockToleranceMs, maxAgeMs, expectedPcrs, trustAnchors, allowDebug } = options;
  if (currentDate !== undefined && (!(currentDate instanceof Date) || Number.isNaN(currentDate.getTime()))) {
    throw new TypeError('currentDate must be a valid Date');
  }
  if (allowDebug !== undefined && typeof allowDebug !== 'boolean') throw new TypeError('allowDebug must be a boolean');
  const pcrs = expectedPcrs === undefined ? [] : resolvePcrAlternatives(expectedPcrs);
  return {
    currentDate: currentDate ?? null,
    clockToleranceMs: clockToleranceMs === undefined ? 0 : nonNegative('clockToleranceMs', clockToleranceMs),
    maxAgeMs: maxAgeMs === undefined ? null : nonNegative('maxAgeMs', maxAgeMs),
    expectedPcrs: pcrs,
    nonce: optionalBytes('nonce', options.nonce),
    publicKey: optionalBytes('publicKey', options.publicKey),
    userData: optionalBytes('userData', options.userData),
    anchors: trustAnchors === undefined ? DEFAULT_ANCHORS : await anchorFingerprints(trustAnchors, backend),
    allowDebug: allowDebug ?? false,
  };
}

function resolvePcrSet(set: unknown, name: string): Map<number, Uint8Array> {
  if (typeof set !== 'object' || set === null || set instanceof Uint8Array) throw new TypeError(`${name} must be an object of index → value`);
  const pcrs = new Map<number, Uint8Array>();
  for (const [key, value] of Object.entries(set)) {
    const index = Number(key);
    if (!/^\d+$/.test(key) || index > 31) throw new TypeError(`${name}: ${key} is not a PCR index 0..31`);
    const bytes = typeof value === 'string' ? fromHex(value) : value instanceof Uint8Array ? copyBytes(value) : null;
    if (!bytes || ![32, 48, 64].includes(bytes.length)) throw new TypeError(`${name}[${key}] must be 32, 48 or 64 bytes (or their hex)`);
    pcrs.set(index, bytes);
  }
  return pcrs;
}

/** One set keeps the 0.1 shape (`expectedPcrs[0]` in messages); a list names each set by position. */
export function resolvePcrAlternatives(expectedPcrs: unknown): Array<Map<number, Uint8Array>> {
  if (!Array.isArray(expectedPcrs)) return [resolvePcrSet(expectedPcrs, 'expectedPcrs')];
  if (expectedPcrs.length === 0) throw new TypeError('expectedPcrs: an empty list admits no image; omit the option to skip the PCR check');
  const sets = expectedPcrs.map((set, i) => resolvePcrSet(set, `expectedPcrs[${i}]`));
  // An empty set among alternatives would admit every image: almost certainly a mistake.
  if (sets.some((set) => set.size === 0)) throw new TypeError('expectedPcrs: every alternative must name at least one PCR');
  return sets;
}

function describeSet(set: Map<number, Uint8Array>): string {
  return `{ ${[...set].map(([i, v]) => `PCR${i}=${toHex(v)}`).join(', ')} }`;
}

/** The first PCR of `set` the document does not match, or null when all match. */
function pcrMismatch(set: Map<number, Uint8Array>, actual: Readonly<Record<number, Uint8Array>>): string | null {
  for (const [index, expected] of set) {
    const value = actual[index];
    if (!value || !bytesEqual(value, expected)) return `PCR${index} mismatch: expected ${toHex(expected)}, document has ${describe(value ?? null)}`;
  }
  return null;
}

/** Throws unless the document matches every PCR of at least one admitted set. */
export function checkPcrAlternatives(sets: Array<Map<number, Uint8Array>>, actual: Readonly<Record<number, Uint8Array>>): void {
  if (sets.length === 0) return;
  const misses: string[] = [];
  for (const set of sets) {
    const miss = pcrMismatch(set, actual);
    if (miss === null) return;
    misses.push(miss);
  }
  if (sets.length === 1) throw new NitroEnclaveError('ERR_ATTESTATION_PCR_MISMATCH', misses[0]!);
  const admitted = sets.map((set, i) => `set ${i}: ${describeSet(set)} (${misses[i]})`).join('; ');
  throw new NitroEnclaveError('ERR_ATTESTATION_PCR_MISMATCH', `no admitted PCR set matches; admitted ${sets.length} sets: ${admitted}`);
}

function describe(bytes: Uint8Array | null): string {
  return bytes === null ? 'absent' : toHex(bytes);
}

function expectEqual(
  code: 'ERR_ATTESTATION_NONCE_MISMATCH' | 'ERR_ATTESTATION_PUBLIC_KEY_MISMATCH' | 'ERR_ATTESTATION_USER_DATA_MISMATCH',
  field: string,
  expected: Uint8Array | null,
  actual: Uint8Array | null,
): void {
  if (expected === null) return;
  if (actual === null || !bytesEqual(expected, actual)) {
    throw new NitroEnclaveError(code, `${field} mismatch: expected ${toHex(expected)}, document has ${describe(actual)}`);
  }
}

async function check(document: Uint8Array, opts: ResolvedOptions, cache: ChainCache | null, backend: CryptoBackend): Promise<VerifiedAttestation> {
  const { sign1, algorithm, attestation, sigStructureRoom } = decodeDocument(document, true);
  const currentDate = opts.currentDate ?? new Date();
  const { leaf } = await verifyChain(
    attestation.cabundle,
    attestation.certificate,
    { anchors: opts.anchors, currentDate, clockToleranceMs: opts.clockToleranceMs, cache, backend },
    (leafKey) => verifyCoseSign1(sign1, leafKey, backend, algorithm, sigStructureRoom).then(
      () => null,
      (err: unknown) => (err instanceof NitroEnclaveError ? err : new NitroEnclaveError('ERR_ATTESTATION_SIGNATURE_INVALID', 'COSE_Sign1 signature cannot be checked')),
    ),
  );

  const stamp = attestation.timestamp.getTime();
  if (opts.maxAgeMs !== null) {
    const now = currentDate.getTime();
    // Written so that NaN fails: each test states what a fresh document satisfies.
    if (!(now - stamp <= opts.maxAgeMs)) {
      throw new NitroEnclaveError('ERR_ATTESTATION_STALE', `timestamp ${attestation.timestamp.toISOString()} is older than maxAgeMs ${opts.maxAgeMs} ms at ${currentDate.toISOString()}`);
    }
    if (!(stamp - now <= opts.clockToleranceMs)) {
      throw new NitroEnclaveError('ERR_ATTESTATION_STALE', `timestamp ${attestation.timestamp.toISOString()} is in the future at ${currentDate.toISOString()}`);
    }
  }
  if (!opts.allowDebug && attestation.debugMode) {
    throw new NitroEnclaveError('ERR_ATTESTATION_DEBUG_MODE', 'the enclave runs in debug mode (PCR0, PCR1 and PCR2 are all zero) and allowDebug is false');
  }
  checkPcrAlternatives(opts.expectedPcrs, attestation.pcrs);
  expectEqual('ERR_ATTESTATION_NONCE_MISMATCH', 'nonce', opts.nonce, attestation.nonce);
  expectEqual('ERR_ATTESTATION_PUBLIC_KEY_MISMATCH', 'public_key', opts.publicKey, attestation.publicKey);
  expectEqual('ERR_ATTESTATION_USER_DATA_MISMATCH', 'user_data', opts.userData, attestation.userData);

  return {
    verified: true,
    moduleId: attestation.moduleId,
    digest: 'SHA384',
    timestamp: attestation.timestamp,
    pcrs: attestation.pcrs,
    // Read through to the decoded document's lazy hex (document.ts says why).
    get pcrsHex() {
      return attestation.pcrsHex;
    },
    certificate: attestation.certificate,
    cabundle: attestation.cabundle,
    certificateNotAfter: leaf.notAfter,
    publicKey: attestation.publicKey,
    userData: attestation.userData,
    nonce: attestation.nonce,
    debugMode: attestation.debugMode,
  };
}

/** A verifier with its own certificate cache; see {@link createAttestationVerifier}. */
export interface AttestationVerifier {
  verify(document: Uint8Array, options?: VerifyAttestationOptions): Promise<VerifiedAttestation>;
}

/**
 * Creates a verifier that caches parsed certificates and verified
 * issuer→subject signatures (by SHA-256 of the DER), so documents from an
 * already-seen CA chain cost one ECDSA verify. Validity windows are still
 * checked on every call; failures are never cached.
 *
 * @example
 * ```ts
 * const verifier = createAttestationVerifier();
 * const facts = await verifier.verify(doc, { expectedPcrs: { 0: pcr0Hex } });
 * ```
 */
export function createAttestationVerifier(config: { cacheSize?: number } = {}): AttestationVerifier {
  return createVerifierWith(webCryptoBackend, config);
}

/** The verifier on a given crypto backend (index.node.ts passes node:crypto). */
export function createVerifierWith(backend: CryptoBackend, config: { cacheSize?: number } = {}): AttestationVerifier {
  if (typeof config !== 'object' || config === null) throw new TypeError('config must be an object');
  const size = config.cacheSize ?? 512;
  if (!Number.isInteger(size) || size < 0) throw new TypeError('cacheSize must be a non-negative integer');
  const cache = size === 0 ? null : new ChainCache(size, backend);
  return {
    async verify(document, options) {
      const opts = await resolveOptions(options, backend);
      return check(document, opts, cache, backend);
    },
  };
}

let shared: AttestationVerifier | undefined;

/**
 * Verifies an AWS Nitro Enclaves attestation document offline: the
 * COSE_Sign1 (ES384) signature, the certificate chain up to the pinned AWS
 * Nitro root, every certificate's validity at `currentDate`, and each
 * expected value given in `options`. Resolves only with verified facts;
 * anything else rejects with a coded {@link NitroEnclaveError}.
 *
 * @example
 * ```ts
 * import { verifyAttestationDocument } from 'nitro-enclave-sdk/attestation';
 *
 * const nonce = crypto.getRandomValues(new Uint8Array(32)); // sent to the peer
 * const facts = await verifyAttestationDocument(peerDocument, {
 *   expectedPcrs: { 0: 'e72a46ca…' },
 *   nonce,
 *   maxAgeMs: 5 * 60_000, // allowDebug defaults to false: debug-mode enclaves are refused
 * });
 * console.log(facts.moduleId, facts.pcrsHex[0]);
 * ```
 */
export function verifyAttestationDocument(document: Uint8Array, options?: VerifyAttestationOptions): Promise<VerifiedAttestation> {
  shared ??= createAttestationVerifier();
  return shared.verify(document, options);
}
