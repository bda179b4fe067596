import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { KMSClient } from '@aws-sdk/client-kms';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { NitroEnclaveError } from '../errors.js';
import type { TrustAnchor } from '../attestation/trust.js';
import { createAttestationVerifier } from '../attestation/index.node.js'; // Node-only module: the node:crypto verifier
import { createNsmClient, type NsmClient } from '../nsm/client.js';
import { openNsm } from '../nsm/device.js';
import type { NsmTransport } from '../nsm/transport.js';
import { createKmsRequestHandler, type KmsTransportOptions } from '../vsock/kms-agent.js';
import { EphemeralKeyPool, checkModulus, type RsaModulusLength } from './keypair.js';
import { createRecipientClient } from './recipient.js';
import type { RetryPolicy } from './retry.js';
import { TrustedSessionKey } from './trusted-session-key.js';

/** How bytes reach KMS from inside the enclave. */
export type KmsTransport =
  | { kind: 'vsock'; cid?: number; port?: number }
  | { kind: 'tcp'; port: number; host?: string }
  | { kind: 'custom'; connect: NonNullable<KmsTransportOptions['connect']> };

/** Options of {@link getTrustedSessionKey}. */
export interface GetTrustedSessionKeyOptions {
  /** The stored `CiphertextBlob` of the TSK: bytes, or base64 text. */
  ciphertextBlob?: Uint8Array | string;
  /** …or a file holding the raw blob (as `nitro-enclave provision` writes it). */
  ciphertextBlobPath?: string;
  /** e.g. `alias/confidential-workflow-tsk`; when set KMS checks the blob belongs to it. */
  keyId?: string;
  encryptionContext?: Record<string, string>;
  /** AWS region of the key; required unless `kms` is given. */
  region?: string;
  /** Any AWS SDK credential identity or provider (e.g. `fromParentCredentials()`). Default: the SDK chain. */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Default `{ kind: 'vsock', cid: 3, port: 8000 }`: the parent's vsock-proxy. */
  transport?: KmsTransport;
  /** A ready KMSClient instead of region/credentials/transport (keep its maxAttempts at 1: retries happen here). */
  kms?: KMSClient;
  /** The NSM: default the `/dev/nsm` device; tests pass `createSimulatedNsm(enclave)`. */
  nsm?: NsmClient | NsmTransport;
  rsaModulusLength?: RsaModulusLength;
  /** Trusted roots for the self-check of our own document. Default: the pinned AWS root. */
  attestationTrustAnchors?: TrustAnchor[];
  /** Extra CAs for TLS to KMS (tests against the simulator only). */
  tlsCa?: string | string[];
  signal?: AbortSignal;
  /** Overall deadline in ms (all attempts). Default 30 000. */
  timeout?: number;
  retry?: RetryPolicy;
  /** Keep the key for this many ms and hand out copies (0 = no cache, the default). */
  cacheTtl?: number;
  clock?: () => Date;
}

/** Timings of the steps of the last call that reached KMS (ms). */
export interface TskTimings {
  keyPairMs: number;
  attestationMs: number;
  verifyMs: number;
  kmsMs: number;
  cmsMs: number;
  attempts: number;
}

const defaultPool = new EphemeralKeyPool();
/** Shared so the AWS CA chain is verified once per process; only successes are cached, validity is rechecked every time. */
const verifier = createAttestationVerifier();
const inflight = new Map<string, Promise<Shared>>();
const cache = new Map<string, { shared: Shared; expires: number }>();
let lastTimings: TskTimings | null = null;

interface Shared {
  key: Uint8Array;
  metadata: ConstructorParameters<typeof TrustedSessionKey>[1];
}

async function blobOf(o: GetTrustedSessionKeyOptions): Promise<Uint8Array> {
  if ((o.ciphertextBlob === undefined) === (o.ciphertextBlobPath === undefined)) throw new TypeError('give exactly one of ciphertextBlob and ciphertextBlobPath');
  if (o.ciphertextBlobPath !== undefined) {
    if (typeof o.ciphertextBlobPath !== 'string') throw new TypeError('ciphertextBlobPath must be a string');
    return new Uint8Array(await readFile(o.ciphertextBlobPath));
  }
  if (o.ciphertextBlob instanceof Uint8Array) return o.ciphertextBlob;
  if (typeof o.ciphertextBlob === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(o.ciphertextBlob.trim())) return new Uint8Array(Buffer.from(o.ciphertextBlob.trim(), 'base64'));
  throw new TypeError('ciphertextBlob must be bytes or base64 text');
}

function validate(o: GetTrustedSessionKeyOptions): void {
  if (typeof o !== 'object' || o === null) throw new TypeError('options must be an object');
  if (!o.kms && (typeof o.region !== 'string' || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(o.region))) throw new TypeError('region must be an AWS region like us-east-1 (or pass a kms client)');
  if (o.rsaModulusLength !== undefined) checkModulus(o.rsaModulusLength);
  if (o.timeout !== undefined && (!Number.isFinite(o.timeout) || o.timeout <= 0)) throw new TypeError('timeout must be a positive number of ms');
  if (o.cacheTtl !== undefined && (!Number.isFinite(o.cacheTtl) || o.cacheTtl < 0)) throw new TypeError('cacheTtl must be a non-negative number of ms');
  if (o.keyId !== undefined && typeof o.keyId !== 'string') throw new TypeError('keyId must be a string');
  if (o.encryptionContext !== undefined && (typeof o.encryptionContext !== 'object' || Object.values(o.encryptionContext).some((v) => typeof v !== 'string'))) {
    throw new TypeError('encryptionContext must map strings to strings');
  }
  const arnRegion = o.keyId ? /^arn:aws[\w-]*:kms:([^:]+):/.exec(o.keyId)?.[1] : undefined;
  if (arnRegion && o.region && arnRegion !== o.region) {
    throw new NitroEnclaveError('ERR_KMS_WRONG_REGION', `keyId is in ${arnRegion} but region is ${o.region}: a KMS ciphertext can only be decrypted in the key's region`);
  }
}

function kmsClientOf(o: GetTrustedSessionKeyOptions): KMSClient {
  if (o.kms) return o.kms;
  const t = o.transport ?? { kind: 'vsock' };
  const transport: KmsTransportOptions = {
    region: o.region!,
    ...(t.kind === 'vsock' ? { vsock: { cid: t.cid ?? 3, port: t.port ?? 8000 } } : t.kind === 'tcp' ? { tcp: { port: t.port, host: t.host ?? '127.0.0.1' } } : { connect: t.connect }),
    ...(o.tlsCa ? { ca: o.tlsCa } : {}),
  };
  return new KMSClient({ region: o.region, ...(o.credentials ? { credentials: o.credentials } : {}), requestHandler: createKmsRequestHandler(transport), maxAttempts: 1 });
}

function nsmOf(o: GetTrustedSessionKeyOptions): NsmClient {
  if (!o.nsm) return openNsm();
  if (typeof (o.nsm as NsmClient).attestation === 'function') return o.nsm as NsmClient;
  return createNsmClient(o.nsm as NsmTransport);
}

function flightKey(o: GetTrustedSessionKeyOptions, blob: Uint8Array): string {
  const h = createHash('sha256').update(blob).update('\0').update(o.keyId ?? '').update('\0').update(o.region ?? '(client)').update('\0');
  for (const [k, v] of Object.entries(o.encryptionContext ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) h.update(`${k}=${v}\0`);
  return h.digest('hex');
}

async function fetchKey(o: GetTrustedSessionKeyOptions, blob: Uint8Array): Promise<Shared> {
  const kms = kmsClientOf(o);
  const nsm = nsmOf(o);
  const recipient = createRecipientClient({
    kms,
    nsm,
    rsaModulusLength: o.rsaModulusLength ?? 2048,
    keyPool: defaultPool,
    verifier,
    ...(o.attestationTrustAnchors ? { trustAnchors: o.attestationTrustAnchors } : {}),
    ...(o.retry ? { retry: o.retry } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
  });
  try {
    const result = await recipient.decrypt(
      { ciphertextBlob: blob, ...(o.keyId ? { keyId: o.keyId } : {}), ...(o.encryptionContext ? { encryptionContext: o.encryptionContext } : {}) },
      { timeout: o.timeout ?? 30_000, ...(o.signal ? { signal: o.signal } : {}) },
    );
    lastTimings = result.timings;
    if (result.plaintext.length !== 32) {
      result.plaintext.fill(0);
      throw new NitroEnclaveError('ERR_TSK_INVALID_KEY', `KMS released ${result.plaintext.length} bytes; a Trusted Session Key is an AES-256 key (32 bytes): provision it with KeySpec AES_256`);
    }
    return {
      key: result.plaintext,
      metadata: { keyArn: result.response.KeyId ?? o.keyId ?? '', pcr0: result.attestation.pcrsHex[0] ?? '', moduleId: result.attestation.moduleId, obtainedAt: o.clock?.() ?? new Date() },
    };
  } finally {
    if (!o.nsm) await nsm.close();
    if (!o.kms) kms.destroy();
  }
}

/**
 * The library's main entry point, run inside the enclave: makes an ephemeral
 * RSA key pair, asks the NSM for an attestation document binding its public
 * key, checks that document offline, calls KMS `Decrypt` with `Recipient`
 * over vsock to the parent's vsock-proxy (TLS end to end), and opens the
 * returned CMS envelope with the ephemeral private key.
 *
 * Concurrent calls for the same blob share one KMS request; each caller gets
 * its own {@link TrustedSessionKey} copy to dispose.
 *
 * @example
 * ```ts
 * import { getTrustedSessionKey } from 'nitro-enclave-sdk';
 *
 * const tsk = await getTrustedSessionKey({
 *   ciphertextBlobPath: '/app/tsk.ciphertext',
 *   keyId: 'alias/confidential-workflow-tsk',
 *   region: 'us-east-1',
 *   credentials: fromParentCredentials(),
 * });
 * ```
 */
export async function getTrustedSessionKey(options: GetTrustedSessionKeyOptions): Promise<TrustedSessionKey> {
  validate(options);
  const blob = await blobOf(options);
  const key = flightKey(options, blob);
  const now = Date.now();
  const cached = cache.get(key);
  if (cached && cached.expires > now) return new TrustedSessionKey(new Uint8Array(cached.shared.key), cached.shared.metadata);
  if (cached) {
    cached.shared.key.fill(0);
    cache.delete(key);
  }
  let flight = inflight.get(key);
  if (!flight) {
    flight = fetchKey(options, blob);
    inflight.set(key, flight);
    const ttl = options.cacheTtl ?? 0;
    flight.then(
      (shared) => {
        inflight.delete(key);
        if (ttl > 0) cache.set(key, { shared, expires: Date.now() + ttl });
        // Without a cache the shared copy is zeroed once every waiting caller has made its own copy.
        else queueMicrotask(() => shared.key.fill(0));
      },
      () => inflight.delete(key),
    );
  }
  const shared = await flight;
  return new TrustedSessionKey(new Uint8Array(shared.key), shared.metadata);
}

/**
 * Generates the next ephemeral key pair in the background, so the next
 * getTrustedSessionKey() skips RSA key generation (the slowest local step).
 *
 * @example
 * ```ts
 * await prepareTrustedSessionKey();                 // at start-up, while other things load
 * const tsk = await getTrustedSessionKey(options); // no key generation on this path
 * ```
 */
export function prepareTrustedSessionKey(options: { rsaModulusLength?: RsaModulusLength } = {}): Promise<void> {
  return defaultPool.prepare(checkModulus(options.rsaModulusLength ?? 2048));
}

/**
 * Drops cached keys (zeroing them) and prepared key pairs.
 *
 * @example
 * ```ts
 * clearTrustedSessionKeyCache(); // e.g. on shutdown, or after rotating the TSK
 * ```
 */
export function clearTrustedSessionKeyCache(): void {
  for (const { shared } of cache.values()) shared.key.fill(0);
  cache.clear();
  defaultPool.clear();
}

/**
 * Step timings of the most recent KMS round trip made by getTrustedSessionKey (for diagnostics and the bench).
 *
 * @example
 * ```ts
 * const t = lastTrustedSessionKeyTimings();
 * console.log(`attempts ${t?.attempts}, KMS ${t?.kmsMs.toFixed(1)} ms`);
 * ```
 */
export function lastTrustedSessionKeyTimings(): TskTimings | null {
  return lastTimings;
}
