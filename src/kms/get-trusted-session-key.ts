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
import { AWS_REGION, createKmsRequestHandler, type KmsTransportOptions } from './request-handler.js';
import { EphemeralKeyPool, checkModulus, type RsaModulusLength } from './keypair.js';
import { checkRegion, parsePinnedKeyArn } from './key-arn.js';
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
  /**
   * The TSK's KMS key as a key ARN or alias ARN, e.g.
   * `arn:aws:kms:us-east-1:111122223333:alias/confidential-workflow-tsk`. Required, and it must come
   * from the enclave image (measured in PCR0), never from the parent: a bare alias or key id resolves
   * in the account of whatever credentials the parent serves. Sent to KMS as `KeyId`, and KMS's answer
   * must name the same key (`ERR_KMS_KEY_MISMATCH` otherwise).
   */
  keyId: string;
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
  /** Keep the key for this many ms and hand out copies (0 = no cache, the default). An unref'd timer zeroes it when the time is up. */
  cacheTtl?: number;
  clock?: () => Date;
  /** Timers for the caller's deadline and cache expiry. Default: the global `setTimeout` / `clearTimeout`. */
  timers?: TskTimers;
}

/**
 * The timer functions getTrustedSessionKey uses (injectable so tests control time).
 *
 * @example
 * ```ts
 * const due: Array<() => void> = [];
 * const timers: TskTimers = { setTimeout: (fn) => due.push(fn), clearTimeout: () => {} };
 * await getTrustedSessionKey({ ...options, cacheTtl: 60_000, timers });
 * due.forEach((fn) => fn()); // the cached key is zeroed now
 * ```
 */
export interface TskTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
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

interface Shared {
  key: Uint8Array;
  metadata: ConstructorParameters<typeof TrustedSessionKey>[1];
}

/** One caller waiting on a flight; it keeps its own signal and deadline. */
interface Waiter {
  deliver(shared: Shared): void;
  fail(err: unknown): void;
}

/** A shared KMS request. It belongs to no single caller: it is cancelled when its last waiter leaves. */
interface Flight {
  waiters: Set<Waiter>;
  controller: AbortController;
  lastError?: unknown;
  done: boolean;
}

interface CacheEntry {
  shared: Shared;
  expires: number;
  timer: unknown;
  timers: TskTimers;
}

const defaultTimers: TskTimers = { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
const defaultPool = new EphemeralKeyPool();
/** Shared so the AWS CA chain is verified once per process; only successes are cached, validity is rechecked every time. */
const verifier = createAttestationVerifier();
const inflight = new Map<string, Flight>();
const cache = new Map<string, CacheEntry>();
let lastTimings: TskTimings | null = null;

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
  if (!o.kms && (typeof o.region !== 'string' || !AWS_REGION.test(o.region))) throw new TypeError('region must be an AWS region like us-east-1 (or pass a kms client)');
  const pinned = parsePinnedKeyArn(o.keyId);
  if (o.rsaModulusLength !== undefined) checkModulus(o.rsaModulusLength);
  if (o.timeout !== undefined && (!Number.isFinite(o.timeout) || o.timeout <= 0)) throw new TypeError('timeout must be a positive number of ms');
  if (o.cacheTtl !== undefined && (!Number.isFinite(o.cacheTtl) || o.cacheTtl < 0)) throw new TypeError('cacheTtl must be a non-negative number of ms');
  if (o.timers !== undefined && (typeof o.timers?.setTimeout !== 'function' || typeof o.timers?.clearTimeout !== 'function')) throw new TypeError('timers must have setTimeout and clearTimeout');
  if (o.encryptionContext !== undefined && (typeof o.encryptionContext !== 'object' || o.encryptionContext === null || Object.values(o.encryptionContext).some((v) => typeof v !== 'string'))) {
    throw new TypeError('encryptionContext must map strings to strings');
  }
  if (o.region) checkRegion(pinned, o.region);
}

function kmsClientOf(o: GetTrustedSessionKeyOptions): KMSClient {
  if (o.kms) return o.kms;
  const t = o.transport ?? { kind: 'vsock' };
  const transport: KmsTransportOptions = {
    region: o.region!,
    ...(t.kind === 'vsock' ? { vsock: { cid: t.cid, port: t.port } } : t.kind === 'tcp' ? { tcp: { port: t.port, host: t.host ?? '127.0.0.1' } } : { connect: t.connect }),
    ...(o.tlsCa ? { ca: o.tlsCa } : {}),
  };
  return new KMSClient({ region: o.region, ...(o.credentials ? { credentials: o.credentials } : {}), requestHandler: createKmsRequestHandler(transport), maxAttempts: 1 });
}

function nsmOf(o: GetTrustedSessionKeyOptions): NsmClient {
  if (!o.nsm) return openNsm();
  if (typeof (o.nsm as NsmClient).attestation === 'function') return o.nsm as NsmClient;
  return createNsmClient(o.nsm as NsmTransport);
}

/**
 * The single-flight and cache identity. Every field is length-delimited or
 * JSON-encoded, so no two different (blob, key, region, context) tuples share
 * an identity: `{"a=b":"c"}` and `{"a":"b=c"}` are different contexts, and a
 * caller with the wrong context must go to KMS and be refused there.
 */
function flightKey(o: GetTrustedSessionKeyOptions, blob: Uint8Array): string {
  const context = Object.entries(o.encryptionContext ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256')
    .update(`${blob.length}:`)
    .update(blob)
    .update(JSON.stringify([o.keyId, o.region ?? null, context]))
    .digest('hex');
}

async function fetchKey(o: GetTrustedSessionKeyOptions, blob: Uint8Array, timeoutMs: number, flight: Flight): Promise<Shared> {
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
      { ciphertextBlob: blob, keyId: o.keyId, ...(o.encryptionContext ? { encryptionContext: o.encryptionContext } : {}) },
      { timeout: timeoutMs, signal: flight.controller.signal, onAttemptError: (err) => (flight.lastError = err) },
    );
    lastTimings = result.timings;
    if (result.plaintext.length !== 32) {
      result.plaintext.fill(0);
      throw new NitroEnclaveError('ERR_TSK_INVALID_KEY', `KMS released ${result.plaintext.length} bytes; a Trusted Session Key is an AES-256 key (32 bytes): provision it with KeySpec AES_256`);
    }
    return {
      key: result.plaintext,
      metadata: { keyArn: result.response.KeyId ?? o.keyId, pcr0: result.attestation.pcrsHex[0] ?? '', moduleId: result.attestation.moduleId, obtainedAt: o.clock?.() ?? new Date() },
    };
  } finally {
    if (!o.nsm) await nsm.close();
    if (!o.kms) kms.destroy();
  }
}

function evict(key: string, only?: CacheEntry): void {
  const entry = cache.get(key);
  if (!entry || (only && entry !== only)) return;
  cache.delete(key);
  entry.timers.clearTimeout(entry.timer);
  entry.shared.key.fill(0);
}

function store(key: string, shared: Shared, o: GetTrustedSessionKeyOptions): void {
  evict(key);
  const ttl = o.cacheTtl!;
  const timers = o.timers ?? defaultTimers;
  const entry: CacheEntry = { shared, expires: (o.clock?.() ?? new Date()).getTime() + ttl, timer: undefined, timers };
  // The timer, not the next call, ends the key's life; unref'd so a cached key never keeps the process alive.
  entry.timer = timers.setTimeout(() => evict(key, entry), ttl);
  (entry.timer as { unref?: () => void } | undefined)?.unref?.();
  cache.set(key, entry);
}

function startFlight(key: string, o: GetTrustedSessionKeyOptions, blob: Uint8Array, timeoutMs: number): Flight {
  const flight: Flight = { waiters: new Set(), controller: new AbortController(), done: false };
  inflight.set(key, flight);
  const finish = () => {
    flight.done = true;
    if (inflight.get(key) === flight) inflight.delete(key);
    const waiters = [...flight.waiters];
    flight.waiters.clear();
    return waiters;
  };
  fetchKey(o, blob, timeoutMs, flight).then(
    (shared) => {
      const waiters = finish();
      // Every waiter gets its own copy synchronously, so the shared bytes can be zeroed (or cached) right after.
      for (const w of waiters) w.deliver(shared);
      if (waiters.length > 0 && (o.cacheTtl ?? 0) > 0) store(key, shared, o);
      else shared.key.fill(0);
    },
    (err: unknown) => {
      for (const w of finish()) w.fail(err);
    },
  );
  return flight;
}

function leave(key: string, flight: Flight, waiter: Waiter): void {
  flight.waiters.delete(waiter);
  if (flight.waiters.size > 0 || flight.done) return;
  if (inflight.get(key) === flight) inflight.delete(key);
  flight.controller.abort(new Error('every caller of this shared request left'));
}

function describe(err: unknown): string {
  return err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
}

/**
 * The library's main entry point, run inside the enclave: makes an ephemeral
 * RSA key pair, asks the NSM for an attestation document binding its public
 * key, checks that document offline, calls KMS `Decrypt` with `Recipient`
 * over vsock to the parent's vsock-proxy (TLS end to end), checks that KMS
 * answered for the pinned key ARN, and opens the returned CMS envelope with
 * the ephemeral private key.
 *
 * Concurrent calls for the same blob, key, region and context share one KMS
 * request; each caller gets its own {@link TrustedSessionKey} copy to dispose,
 * and keeps its own `signal` and `timeout`. The shared request belongs to no
 * caller: it runs until its last waiter has left (then it is cancelled) or
 * until its own deadline (the `timeout` of the caller that started it); a
 * waiter with time left when that deadline passes starts a new request.
 *
 * @example
 * ```ts
 * import { getTrustedSessionKey, fromParentCredentials } from 'nitro-enclave-sdk';
 *
 * const tsk = await getTrustedSessionKey({
 *   ciphertextBlobPath: '/app/tsk.ciphertext',
 *   keyId: 'arn:aws:kms:us-east-1:111122223333:alias/confidential-workflow-tsk', // baked into the image
 *   region: 'us-east-1',
 *   credentials: fromParentCredentials(),
 * });
 * ```
 */
export async function getTrustedSessionKey(options: GetTrustedSessionKeyOptions): Promise<TrustedSessionKey> {
  validate(options);
  const blob = await blobOf(options);
  const key = flightKey(options, blob);
  const cached = cache.get(key);
  if (cached && cached.expires > (options.clock?.() ?? new Date()).getTime()) return new TrustedSessionKey(new Uint8Array(cached.shared.key), cached.shared.metadata);
  if (cached) evict(key);

  const timeout = options.timeout ?? 30_000;
  const deadline = Date.now() + timeout;
  const timers = options.timers ?? defaultTimers;
  const { signal } = options;
  if (signal?.aborted) throw new NitroEnclaveError('ERR_KMS_ABORTED', 'KMS Decrypt was aborted', { cause: signal.reason });

  return new Promise<TrustedSessionKey>((resolve, reject) => {
    let flight: Flight;
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      timers.clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const waiter: Waiter = {
      deliver: (shared) => settle(() => resolve(new TrustedSessionKey(new Uint8Array(shared.key), shared.metadata))),
      fail: (err) => {
        // The shared request hit its own deadline (its starter had less time than this caller): go again with what is left.
        if (err instanceof NitroEnclaveError && err.code === 'ERR_KMS_TIMEOUT' && deadline - Date.now() > 0 && !signal?.aborted) join();
        else settle(() => reject(err));
      },
    };
    const giveUp = (err: NitroEnclaveError) =>
      settle(() => {
        leave(key, flight, waiter);
        reject(err);
      });
    const onAbort = () => giveUp(new NitroEnclaveError('ERR_KMS_ABORTED', 'KMS Decrypt was aborted', { cause: signal!.reason }));
    const timer = timers.setTimeout(() => {
      const last = flight.lastError;
      giveUp(new NitroEnclaveError('ERR_KMS_TIMEOUT', `KMS Decrypt did not succeed before the deadline (${last === undefined ? `${timeout} ms` : `last error: ${describe(last)}`})`, { cause: last }));
    }, timeout);
    signal?.addEventListener('abort', onAbort, { once: true });
    function join() {
      flight = inflight.get(key) ?? startFlight(key, options, blob, Math.max(1, deadline - Date.now()));
      flight.waiters.add(waiter);
    }
    join();
  });
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
  for (const key of [...cache.keys()]) evict(key);
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
