import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { KMSClient, type KMSClientConfig } from '@aws-sdk/client-kms';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { NitroEnclaveError } from '../errors.js';
import type { AttestationVerifier } from '../attestation/verify.js';
import type { TrustAnchor } from '../attestation/trust.js';
import { createAttestationVerifier } from '../attestation/index.node.js'; // Node-only module: the node:crypto verifier
import { createNsmClient, type NsmClient } from '../nsm/client.js';
import { openNsm } from '../nsm/device.js';
import type { NsmTransport } from '../nsm/transport.js';
import { AWS_REGION, createKmsRequestHandler, type KmsTransportOptions } from './request-handler.js';
import { EphemeralKeyPool, checkModulus, type RsaModulusLength } from './keypair.js';
import { checkRegion, parsePinnedKeyArn } from './key-arn.js';
import { auditKmsKey, type AuditedKey } from './key-audit.js';
import { createOwningKeyRing, type TrustedSessionKeyRing } from './key-ring.js';
import { createRecipientClient } from './recipient.js';
import { describeError, type RetryPolicy } from './retry.js';
import { TrustedSessionKey } from './trusted-session-key.js';

/** How bytes reach KMS from inside the enclave. */
export type KmsTransport =
  | { kind: 'vsock'; cid?: number; port?: number }
  | { kind: 'tcp'; port: number; host?: string }
  | { kind: 'custom'; connect: NonNullable<KmsTransportOptions['connect']> };

/**
 * Options of {@link createTrustedSessionKeyClient}: how to reach KMS and the NSM, and the policies
 * (time, retries, cache) every {@link TrustedSessionKeyClient.get} of this client follows.
 */
export interface TrustedSessionKeyClientOptions {
  /** A ready KMSClient instead of region/credentials/requestHandler (keep its maxAttempts at 1: retries happen here). Not destroyed by `close()`. */
  kms?: KMSClient;
  /** AWS region of the key; required unless `kms` is given. */
  region?: string;
  /** Any AWS SDK credential identity or provider (e.g. `fromParentCredentials()`). Default: the SDK chain. */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** The smithy `RequestHandler` for KMS. Default: {@link createKmsRequestHandler} over `transport`. */
  requestHandler?: KMSClientConfig['requestHandler'];
  /** Where the default request handler connects. Default `{ kind: 'vsock', cid: 3, port: 8000 }`: the parent's vsock-proxy. */
  transport?: KmsTransport;
  /** Extra CAs for TLS to KMS through the default request handler (tests against the simulator only). */
  tlsCa?: string | string[];
  /** The NSM: default the `/dev/nsm` device (opened on first use, closed by `close()`); tests pass `createSimulatedNsm(enclave)`. */
  nsm?: NsmClient | NsmTransport;
  /**
   * The verifier for the self-check of our own document, which runs while the KMS request is in
   * flight. Default: a node:crypto verifier owned by this client (it caches the verified chain).
   */
  verifier?: AttestationVerifier;
  /** Trusted roots for the self-check of our own document. Default: the pinned AWS root. */
  attestationTrustAnchors?: TrustAnchor[];
  rsaModulusLength?: RsaModulusLength;
  /** The one time source for the cache, deadlines, retries and the self-check. Default `() => new Date()`. */
  clock?: () => Date;
  /** Timers for deadlines and cache expiry. Default: the global `setTimeout` / `clearTimeout`. */
  timers?: TskTimers;
  retry?: RetryPolicy;
  /** Keep a key this many ms and hand out copies (0 = no cache, the default). An unref'd timer zeroes it when the time is up. */
  cacheTtlMs?: number;
  /** Default deadline of a `get` in ms (all attempts). Default 30 000. */
  timeoutMs?: number;
  /**
   * Audit the pinned key before anything KMS releases for it is used (`auditKmsKey`: DescribeKey,
   * GetKeyPolicy, ListGrants, alongside the first Decrypt). Default `true`. Setting `false` is
   * DANGEROUS: the enclave then adopts a key whose policy lets the parent (or an IAM administrator)
   * mint a TSK it knows with Encrypt or GenerateDataKey, a key with imported material, a
   * multi-Region key. See docs/trusted-session-key.md#key-audit.
   */
  keyAudit?: boolean;
  /** How long a passed audit holds before the next `get` audits the key again (ms). Default 300 000 (5 min). */
  keyAuditIntervalMs?: number;
  /** Accept a multi-Region key (see `KeyAuditOptions.allowMultiRegionKey`). Default `false`; dangerous. */
  allowMultiRegionKey?: boolean;
}

/** What one {@link TrustedSessionKeyClient.get} asks for: the blob, the pinned key, and this call's signal and deadline. */
export interface TrustedSessionKeyRequest {
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
  signal?: AbortSignal;
  /** Deadline of this call in ms (all attempts). Default: the client's `timeoutMs`. */
  timeoutMs?: number;
}

/** One blob of a {@link TrustedSessionKeyRingRequest}: its bytes (or file) and the encryption context it was provisioned with. */
export interface TrustedSessionKeyBlob {
  /** The stored `CiphertextBlob`: bytes, or base64 text. */
  ciphertextBlob?: Uint8Array | string;
  /** …or a file holding the raw blob. */
  ciphertextBlobPath?: string;
  /** The blob's encryption context, e.g. `{ app: 'research', tsk: 'v3' }` as `nitro-enclave provision --rotate` wrote it. */
  encryptionContext?: Record<string, string>;
}

/**
 * What {@link TrustedSessionKeyClient.getKeyRing} asks for: the blobs of one pinned KMS key, oldest
 * first (the last is the newest and seals), and this call's signal and deadline.
 */
export interface TrustedSessionKeyRingRequest {
  /** The pinned KMS key ARN or alias ARN of every blob (as {@link TrustedSessionKeyRequest.keyId}). */
  keyId: string;
  /** Oldest first; at least one. Keep a blob here while any workflow history or sealed state still needs its key. */
  blobs: readonly TrustedSessionKeyBlob[];
  signal?: AbortSignal;
  /** Deadline of each blob's `get` in ms. Default: the client's `timeoutMs`. */
  timeoutMs?: number;
}

/**
 * The timer functions a Trusted Session Key client uses (injectable so tests control time).
 *
 * @example
 * ```ts
 * const due: Array<() => void> = [];
 * const timers: TskTimers = { setTimeout: (fn) => due.push(fn), clearTimeout: () => {} };
 * const client = createTrustedSessionKeyClient({ region: 'us-east-1', cacheTtlMs: 60_000, timers });
 * await client.get({ ciphertextBlobPath: '/app/tsk.ciphertext', keyId: TSK_KEY_ARN });
 * due.forEach((fn) => fn()); // the cached key is zeroed now
 * ```
 */
export interface TskTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Timings (ms) of the KMS round trip that produced a key: on `tsk.timings`. The self-check runs
 * during the KMS request, so `verifyMs` overlaps `kmsMs` and is not part of the total.
 */
export interface TskTimings {
  keyPairMs: number;
  attestationMs: number;
  verifyMs: number;
  kmsMs: number;
  cmsMs: number;
  attempts: number;
}

/**
 * A long-lived Trusted Session Key client: every piece of state (prepared key pairs, the verifier's
 * cache, requests in flight, cached keys, the KMS client and the NSM it opened) lives in it.
 */
export interface TrustedSessionKeyClient {
  /**
   * Runs the whole attested exchange (or joins one in flight for the same blob, key and context, or
   * copies a cached key) and returns a {@link TrustedSessionKey} the caller owns and disposes.
   */
  get(request: TrustedSessionKeyRequest): Promise<TrustedSessionKey>;
  /**
   * The keys of a TSK rotation as a key ring: each blob is obtained as by `get` (attested, audited,
   * all at once), and the ring holds them oldest first, so the last blob's key seals and every key
   * opens what it sealed (by key id). The ring owns the keys: `ring.dispose()` zeroes them. If any
   * blob fails, the keys already obtained are zeroed and the first error is thrown.
   */
  getKeyRing(request: TrustedSessionKeyRingRequest): Promise<TrustedSessionKeyRing>;
  /** Generates the next ephemeral key pair in the background, so the next `get` skips RSA key generation. */
  prepare(): Promise<void>;
  /** Zeroes cached keys and drops prepared key pairs. */
  clear(): void;
  /** `clear()`, then releases what this client opened (the KMS client it built, the NSM device it opened). Later calls fail with `ERR_TSK_CLIENT_CLOSED`. */
  close(): Promise<void>;
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
  /** The timers that scheduled `timer`, so the same ones clear it. */
  timers: TskTimers;
}

/** What one exchange needs from the outside: a KMS client and an NSM, and how to let go of them after. */
export interface TskConnection {
  kms: KMSClient;
  nsm: NsmClient;
  release(): Promise<void>;
}

/** The per-client settings, resolved and validated once. */
export interface TskSettings {
  region: string | undefined;
  clock: () => Date;
  timers: TskTimers;
  retry: RetryPolicy | undefined;
  cacheTtlMs: number;
  timeoutMs: number;
  rsaModulusLength: RsaModulusLength;
  trustAnchors: TrustAnchor[] | undefined;
  keyAudit: boolean;
  keyAuditIntervalMs: number;
  allowMultiRegionKey: boolean;
}

const defaultTimers: TskTimers = { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };

/** Checks the client options (a bad option is a TypeError, at construction) and resolves the defaults. */
export function settingsOf(o: TrustedSessionKeyClientOptions): TskSettings {
  if (typeof o !== 'object' || o === null) throw new TypeError('options must be an object');
  if (!o.kms && (typeof o.region !== 'string' || !AWS_REGION.test(o.region))) throw new TypeError('region must be an AWS region like us-east-1 (or pass a kms client)');
  if (o.timeoutMs !== undefined && (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0)) throw new TypeError('timeoutMs must be a positive number of ms');
  if (o.cacheTtlMs !== undefined && (!Number.isFinite(o.cacheTtlMs) || o.cacheTtlMs < 0)) throw new TypeError('cacheTtlMs must be a non-negative number of ms');
  if (o.timers !== undefined && (typeof o.timers?.setTimeout !== 'function' || typeof o.timers?.clearTimeout !== 'function')) throw new TypeError('timers must have setTimeout and clearTimeout');
  if (o.clock !== undefined && typeof o.clock !== 'function') throw new TypeError('clock must be a function returning a Date');
  if (o.keyAudit !== undefined && typeof o.keyAudit !== 'boolean') throw new TypeError('keyAudit must be a boolean');
  if (o.keyAuditIntervalMs !== undefined && (!Number.isFinite(o.keyAuditIntervalMs) || o.keyAuditIntervalMs <= 0)) throw new TypeError('keyAuditIntervalMs must be a positive number of ms');
  if (o.allowMultiRegionKey !== undefined && typeof o.allowMultiRegionKey !== 'boolean') throw new TypeError('allowMultiRegionKey must be a boolean');
  for (const old of ['timeout', 'cacheTtl'] as const) {
    if (old in o) throw new TypeError(`${old} was renamed ${old}Ms in 0.2 (durations end in Ms)`);
  }
  return {
    region: o.region,
    clock: o.clock ?? (() => new Date()),
    timers: o.timers ?? defaultTimers,
    retry: o.retry,
    cacheTtlMs: o.cacheTtlMs ?? 0,
    timeoutMs: o.timeoutMs ?? 30_000,
    rsaModulusLength: checkModulus(o.rsaModulusLength ?? 2048),
    trustAnchors: o.attestationTrustAnchors,
    keyAudit: o.keyAudit ?? true,
    keyAuditIntervalMs: o.keyAuditIntervalMs ?? 300_000,
    allowMultiRegionKey: o.allowMultiRegionKey ?? false,
  };
}

function checkRingRequest(r: TrustedSessionKeyRingRequest): void {
  if (typeof r !== 'object' || r === null) throw new TypeError('request must be an object');
  if (!Array.isArray(r.blobs) || r.blobs.length === 0) throw new TypeError('blobs must be a non-empty array of { ciphertextBlob | ciphertextBlobPath, encryptionContext? }, oldest first');
  r.blobs.forEach((b, i) => {
    if (typeof b !== 'object' || b === null) throw new TypeError(`blobs[${i}] must be an object`);
    if ((b.ciphertextBlob === undefined) === (b.ciphertextBlobPath === undefined)) throw new TypeError(`blobs[${i}]: give exactly one of ciphertextBlob and ciphertextBlobPath`);
  });
}

/** Builds the KMS client the options describe (the caller destroys it). */
export function kmsClientOf(o: TrustedSessionKeyClientOptions): KMSClient {
  if (o.kms) return o.kms;
  let requestHandler = o.requestHandler;
  if (!requestHandler) {
    const t = o.transport ?? { kind: 'vsock' };
    requestHandler = createKmsRequestHandler({
      region: o.region!,
      ...(t.kind === 'vsock' ? { vsock: { cid: t.cid, port: t.port } } : t.kind === 'tcp' ? { tcp: { port: t.port, host: t.host ?? '127.0.0.1' } } : { connect: t.connect }),
      ...(o.tlsCa ? { ca: o.tlsCa } : {}),
    });
  }
  return new KMSClient({ region: o.region, ...(o.credentials ? { credentials: o.credentials } : {}), requestHandler, maxAttempts: 1 });
}

/** The NSM client the options describe, and whether we opened it (and so must close it). */
export function nsmOf(o: TrustedSessionKeyClientOptions): { nsm: NsmClient; owned: boolean } {
  if (!o.nsm) return { nsm: openNsm(), owned: true };
  if (typeof (o.nsm as NsmClient).attestation === 'function') return { nsm: o.nsm as NsmClient, owned: false };
  return { nsm: createNsmClient(o.nsm as NsmTransport), owned: false };
}

async function blobOf(o: TrustedSessionKeyRequest): Promise<Uint8Array> {
  if ((o.ciphertextBlob === undefined) === (o.ciphertextBlobPath === undefined)) throw new TypeError('give exactly one of ciphertextBlob and ciphertextBlobPath');
  if (o.ciphertextBlobPath !== undefined) {
    if (typeof o.ciphertextBlobPath !== 'string') throw new TypeError('ciphertextBlobPath must be a string');
    return new Uint8Array(await readFile(o.ciphertextBlobPath));
  }
  if (o.ciphertextBlob instanceof Uint8Array) return o.ciphertextBlob;
  if (typeof o.ciphertextBlob === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(o.ciphertextBlob.trim())) return new Uint8Array(Buffer.from(o.ciphertextBlob.trim(), 'base64'));
  throw new TypeError('ciphertextBlob must be bytes or base64 text');
}

function validateRequest(o: TrustedSessionKeyRequest, settings: TskSettings): void {
  if (typeof o !== 'object' || o === null) throw new TypeError('request must be an object');
  const pinned = parsePinnedKeyArn(o.keyId);
  if (o.timeoutMs !== undefined && (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0)) throw new TypeError('timeoutMs must be a positive number of ms');
  if ('timeout' in o) throw new TypeError('timeout was renamed timeoutMs in 0.2 (durations end in Ms)');
  if (o.encryptionContext !== undefined && (typeof o.encryptionContext !== 'object' || o.encryptionContext === null || Object.values(o.encryptionContext).some((v) => typeof v !== 'string'))) {
    throw new TypeError('encryptionContext must map strings to strings');
  }
  if (settings.region) checkRegion(pinned, settings.region);
}

/**
 * The single-flight and cache identity. Every field is length-delimited or
 * JSON-encoded, so no two different (blob, key, region, context) tuples share
 * an identity: `{"a=b":"c"}` and `{"a":"b=c"}` are different contexts, and a
 * caller with the wrong context must go to KMS and be refused there.
 */
function flightKey(o: TrustedSessionKeyRequest, settings: TskSettings, blob: Uint8Array): string {
  const context = Object.entries(o.encryptionContext ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // The audit settings too: a call that audits must never join (or be served the cache of) one that does not.
  return createHash('sha256')
    .update(`${blob.length}:`)
    .update(blob)
    .update(JSON.stringify([o.keyId, settings.region ?? null, context, auditId(o.keyId, settings)]))
    .digest('hex');
}

/** Which audit covers a request: the pinned key and the settings that change the verdict (null: no audit). */
function auditId(keyId: string, settings: TskSettings): string | null {
  return settings.keyAudit ? JSON.stringify([keyId, settings.allowMultiRegionKey]) : null;
}

/** A passed, running or failed audit of one pinned key, shared by the requests of an engine. */
interface AuditEntry {
  readonly promise: Promise<AuditedKey>;
  /** Cancels the audit when no request waits for it any more (before it passed). */
  readonly controller: AbortController;
  /** The requests waiting for it. */
  users: number;
  /** When the audit that passed started (its facts are as old as that). */
  readonly startedAt: number;
  passed: boolean;
}

/** Waits for `promise`, or rejects with the signal's reason when it fires first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

/**
 * The state of a Trusted Session Key client: prepared key pairs, the self-check's verifier, the
 * requests in flight and the cache. It does not own a connection: each `get` is handed one, so the
 * module-level `getTrustedSessionKey` can keep its one-call-one-connection behaviour on a default
 * engine while {@link createTrustedSessionKeyClient} keeps one connection for its lifetime.
 */
export class TskEngine {
  readonly #pool = new EphemeralKeyPool();
  readonly #verifier: AttestationVerifier;
  readonly #inflight = new Map<string, Flight>();
  readonly #cache = new Map<string, CacheEntry>();
  readonly #audits = new Map<string, AuditEntry>();
  /** Cancels the audits in flight on close(). */
  readonly #closing = new AbortController();
  #closed = false;
  /** Bumped by clear(): a request that started before it does not fill the cache after it. */
  #generation = 0;

  constructor(verifier?: AttestationVerifier) {
    // node:crypto, inline: the check starts once the request is on its way, and the thread is idle
    // while KMS works. Measured against the WebCrypto (thread-pool) verifier by `npm run bench` with the
    // simulator in its own process: 1.08x vs 1.11-1.14x the by-hand steps. Only when KMS's own work
    // shares this thread (the simulator in-process) does the thread pool do better (1.22x vs 1.26x).
    this.#verifier = verifier ?? createAttestationVerifier();
  }

  prepare(bits: RsaModulusLength): Promise<void> {
    return this.#pool.prepare(bits);
  }

  clear(): void {
    this.#generation++;
    for (const key of [...this.#cache.keys()]) this.#evict(key);
    this.#audits.clear();
    this.#pool.clear();
  }

  /** Clears, cancels the requests in flight (their callers get ERR_TSK_CLIENT_CLOSED), and caches nothing more. */
  close(): void {
    this.#closed = true;
    this.clear();
    this.#closing.abort(new NitroEnclaveError('ERR_TSK_CLIENT_CLOSED', 'this Trusted Session Key client was closed'));
    for (const flight of this.#inflight.values()) {
      flight.controller.abort(new NitroEnclaveError('ERR_TSK_CLIENT_CLOSED', 'this Trusted Session Key client was closed'));
      const waiters = [...flight.waiters];
      flight.waiters.clear();
      for (const w of waiters) w.fail(new NitroEnclaveError('ERR_TSK_CLIENT_CLOSED', 'this Trusted Session Key client was closed while the request was in flight'));
    }
    this.#inflight.clear();
  }

  async get(request: TrustedSessionKeyRequest, settings: TskSettings, connect: () => TskConnection): Promise<TrustedSessionKey> {
    validateRequest(request, settings);
    const blob = await blobOf(request);
    // close() may have run while the blob was read: no new request on a closed client.
    if (this.#closed) throw new NitroEnclaveError('ERR_TSK_CLIENT_CLOSED', 'this Trusted Session Key client was closed');
    const key = flightKey(request, settings, blob);
    const cached = this.#cache.get(key);
    if (cached && cached.expires > settings.clock().getTime() && this.#auditFresh(request.keyId, settings)) return new TrustedSessionKey(new Uint8Array(cached.shared.key), cached.shared.metadata);
    if (cached) this.#evict(key);

    const timeoutMs = request.timeoutMs ?? settings.timeoutMs;
    const deadline = settings.clock().getTime() + timeoutMs;
    const { timers } = settings;
    const { signal } = request;
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
        deliver: (shared) => {
          if (settings.clock().getTime() > deadline) {
            settle(() => reject(new NitroEnclaveError('ERR_KMS_TIMEOUT', `KMS Decrypt did not succeed before the deadline (${timeoutMs} ms)`)));
            return;
          }
          settle(() => resolve(new TrustedSessionKey(new Uint8Array(shared.key), shared.metadata)));
        },
        fail: (err) => {
          // The shared request hit its own deadline (its starter had less time than this caller): go again with what is left.
          if (err instanceof NitroEnclaveError && err.code === 'ERR_KMS_TIMEOUT' && deadline - settings.clock().getTime() > 0 && !signal?.aborted) join();
          else settle(() => reject(err));
        },
      };
      const giveUp = (err: NitroEnclaveError) =>
        settle(() => {
          this.#leave(key, flight, waiter);
          reject(err);
        });
      const onAbort = () => giveUp(new NitroEnclaveError('ERR_KMS_ABORTED', 'KMS Decrypt was aborted', { cause: signal!.reason }));
      const timer = timers.setTimeout(() => {
        const last = flight.lastError;
        giveUp(new NitroEnclaveError('ERR_KMS_TIMEOUT', `KMS Decrypt did not succeed before the deadline (${last === undefined ? `${timeoutMs} ms` : `last error: ${describeError(last)}`})`, { cause: last }));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      const join = () => {
        flight = this.#inflight.get(key) ?? this.#startFlight(key, request, settings, connect, blob, Math.max(1, deadline - settings.clock().getTime()));
        flight.waiters.add(waiter);
      };
      join();
    });
  }

  /** Whether a passed audit of this key is still within `keyAuditIntervalMs` (always true with the audit off). */
  #auditFresh(keyId: string, settings: TskSettings): boolean {
    const id = auditId(keyId, settings);
    if (id === null) return true;
    const entry = this.#audits.get(id);
    return entry !== undefined && entry.passed && settings.clock().getTime() - entry.startedAt < settings.keyAuditIntervalMs;
  }

  /**
   * The audit of the pinned key: a fresh passed one, the one running, or a new one on `kms`. The
   * caller holds it until `release()`; an audit nobody holds any more before it passed is cancelled
   * (as a shared KMS request is when its last waiter leaves). `started` says whether it is new.
   */
  #audit(keyId: string, settings: TskSettings, kms: KMSClient): { promise: Promise<AuditedKey>; started: boolean; release(): void } {
    const id = auditId(keyId, settings)!;
    const now = settings.clock().getTime();
    const hold = (entry: AuditEntry, started: boolean) => {
      entry.users++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        if (--entry.users > 0 || entry.passed) return;
        entry.controller.abort(new Error('no request waits for this key audit any more'));
        if (this.#audits.get(id) === entry) this.#audits.delete(id);
      };
      return { promise: entry.promise, started, release };
    };
    const current = this.#audits.get(id);
    if (current && (!current.passed || now - current.startedAt < settings.keyAuditIntervalMs)) return hold(current, false);
    const controller = new AbortController();
    const promise = auditKmsKey(kms, keyId, {
      allowMultiRegionKey: settings.allowMultiRegionKey,
      timeoutMs: settings.timeoutMs,
      clock: settings.clock,
      signal: AbortSignal.any([this.#closing.signal, controller.signal]),
      ...(settings.retry ? { retry: settings.retry } : {}),
    });
    const entry: AuditEntry = { promise, controller, users: 0, startedAt: now, passed: false };
    this.#audits.set(id, entry);
    promise.then(
      () => {
        entry.passed = true;
      },
      () => {
        // A failed audit is never remembered: the next request audits again (the operator may have fixed the key).
        if (this.#audits.get(id) === entry) this.#audits.delete(id);
      },
    );
    return hold(entry, true);
  }

  async #fetch(request: TrustedSessionKeyRequest, settings: TskSettings, connect: () => TskConnection, blob: Uint8Array, timeoutMs: number, flight: Flight): Promise<Shared> {
    const connection = connect();
    // The audit runs alongside the attested Decrypt, on the same connection; the released envelope
    // is opened only once it has passed and KMS's answer names the key it examined (see admit).
    const audit = settings.keyAudit ? this.#audit(request.keyId, settings, connection.kms) : undefined;
    const admit = audit
      ? async (answer: { readonly KeyId?: string }) => {
          const audited = await untilAborted(audit.promise, flight.controller.signal);
          if (answer.KeyId !== audited.keyArn) {
            // An alias re-pointed between the audit and the Decrypt: the key that answered was not audited.
            const id = auditId(request.keyId, settings)!;
            if (this.#audits.get(id)?.promise === audit.promise) this.#audits.delete(id);
            throw new NitroEnclaveError('ERR_KMS_KEY_UNSAFE', `KMS Decrypt answered for key ${String(answer.KeyId)}, but the audit examined ${audited.keyArn} (was the alias re-pointed?): the key that answered is not audited, so what it released was zeroed unused; the next request audits again`);
          }
        }
      : undefined;
    const recipient = createRecipientClient({
      kms: connection.kms,
      nsm: connection.nsm,
      rsaModulusLength: settings.rsaModulusLength,
      keyPool: this.#pool,
      verifier: this.#verifier,
      clock: settings.clock,
      ...(settings.trustAnchors ? { trustAnchors: settings.trustAnchors } : {}),
      ...(settings.retry ? { retry: settings.retry } : {}),
    });
    try {
      const result = await recipient.decrypt(
        { ciphertextBlob: blob, keyId: request.keyId, ...(request.encryptionContext ? { encryptionContext: request.encryptionContext } : {}) },
        { timeoutMs, signal: flight.controller.signal, onAttemptError: (err) => (flight.lastError = err), ...(admit ? { admit } : {}) },
      );
      if (result.plaintext.length !== 32) {
        result.plaintext.fill(0);
        throw new NitroEnclaveError('ERR_TSK_INVALID_KEY', `KMS released ${result.plaintext.length} bytes; a Trusted Session Key is an AES-256 key (32 bytes): provision it with KeySpec AES_256`);
      }
      return {
        key: result.plaintext,
        metadata: {
          keyArn: result.response.KeyId ?? request.keyId,
          pcr0: result.attestation.pcrsHex[0] ?? '',
          moduleId: result.attestation.moduleId,
          obtainedAt: settings.clock(),
          timings: Object.freeze({ ...result.timings }),
        },
      };
    } finally {
      // An audit this request started runs on its connection: let it finish (it may be shared with
      // other requests) before the connection is let go.
      audit?.release();
      if (audit?.started) await audit.promise.catch(() => {});
      await connection.release();
    }
  }

  #evict(key: string, only?: CacheEntry): void {
    const entry = this.#cache.get(key);
    if (!entry || (only && entry !== only)) return;
    this.#cache.delete(key);
    entry.timers.clearTimeout(entry.timer);
    entry.shared.key.fill(0);
  }

  #store(key: string, shared: Shared, settings: TskSettings): void {
    this.#evict(key);
    const ttl = settings.cacheTtlMs;
    const entry: CacheEntry = { shared, expires: settings.clock().getTime() + ttl, timer: undefined, timers: settings.timers };
    // The timer, not the next call, ends the key's life; unref'd so a cached key never keeps the process alive.
    entry.timer = settings.timers.setTimeout(() => this.#evict(key, entry), ttl);
    (entry.timer as { unref?: () => void } | undefined)?.unref?.();
    this.#cache.set(key, entry);
  }

  #startFlight(key: string, request: TrustedSessionKeyRequest, settings: TskSettings, connect: () => TskConnection, blob: Uint8Array, timeoutMs: number): Flight {
    const flight: Flight = { waiters: new Set(), controller: new AbortController(), done: false };
    this.#inflight.set(key, flight);
    const finish = () => {
      flight.done = true;
      if (this.#inflight.get(key) === flight) this.#inflight.delete(key);
      const waiters = [...flight.waiters];
      flight.waiters.clear();
      return waiters;
    };
    const generation = this.#generation;
    this.#fetch(request, settings, connect, blob, timeoutMs, flight).then(
      (shared) => {
        const waiters = finish();
        let stored = false;
        try {
          // Every waiter gets its own copy synchronously, so the shared bytes can be zeroed (or cached) right after.
          for (const w of waiters) w.deliver(shared);
          if (waiters.length > 0 && settings.cacheTtlMs > 0 && !this.#closed && generation === this.#generation) {
            this.#store(key, shared, settings);
            stored = true;
          }
        } finally {
          if (!stored) shared.key.fill(0);
        }
      },
      (err: unknown) => {
        for (const w of finish()) w.fail(err);
      },
    );
    return flight;
  }

  #leave(key: string, flight: Flight, waiter: Waiter): void {
    flight.waiters.delete(waiter);
    if (flight.waiters.size > 0 || flight.done) return;
    if (this.#inflight.get(key) === flight) this.#inflight.delete(key);
    flight.controller.abort(new Error('every caller of this shared request left'));
  }
}

/**
 * Creates a Trusted Session Key client: one object holds the KMS client, the NSM, prepared key pairs,
 * the self-check's verifier, requests in flight, key audits and the cache. `get` makes an ephemeral
 * RSA key pair, asks the NSM for an attestation document binding its public key, calls KMS `Decrypt`
 * with `Recipient` over vsock to the parent's vsock-proxy (TLS end to end) while checking that
 * document offline and (once per client, then every `keyAuditIntervalMs`) auditing the pinned key
 * ({@link auditKmsKey}: nobody but the admitted enclave may learn or mint it), checks that KMS answered
 * for the pinned and audited key, and only then opens the returned CMS envelope with the ephemeral
 * private key. A key that fails the audit is refused with `ERR_KMS_KEY_UNSAFE`.
 *
 * Concurrent `get`s for the same blob, key and context share one KMS request; each caller gets its
 * own {@link TrustedSessionKey} copy to dispose, and keeps its own `signal` and `timeoutMs`.
 *
 * @example
 * ```ts
 * import { createTrustedSessionKeyClient, fromParentCredentials } from 'nitro-enclave-sdk';
 *
 * const tskClient = createTrustedSessionKeyClient({ region: 'us-east-1', credentials: fromParentCredentials() });
 * await tskClient.prepare(); // at start-up: RSA key generation off the critical path
 * const tsk = await tskClient.get({ ciphertextBlobPath: '/app/tsk.ciphertext', keyId: TSK_KEY_ARN });
 * console.log(`KMS ${tsk.timings.kmsMs.toFixed(1)} ms`);
 * tsk.dispose();
 * await tskClient.close();
 * ```
 */
export function createTrustedSessionKeyClient(options: TrustedSessionKeyClientOptions): TrustedSessionKeyClient {
  const settings = settingsOf(options);
  const engine = new TskEngine(options.verifier);
  let kms: KMSClient | undefined;
  let nsm: { nsm: NsmClient; owned: boolean } | undefined;
  let closed = false;
  // The client keeps its KMS client (and its keep-alive connections) and its NSM for its lifetime.
  const connection = (): TskConnection => {
    live();
    kms ??= kmsClientOf(options);
    nsm ??= nsmOf(options);
    return { kms, nsm: nsm.nsm, release: async () => {} };
  };
  const live = () => {
    if (closed) throw new NitroEnclaveError('ERR_TSK_CLIENT_CLOSED', 'this Trusted Session Key client was closed');
  };
  return {
    async get(request) {
      live();
      return engine.get(request, settings, connection);
    },
    async getKeyRing(request) {
      live();
      checkRingRequest(request);
      const { keyId, signal, timeoutMs } = request;
      const results = await Promise.allSettled(
        request.blobs.map((b) =>
          engine.get(
            {
              keyId,
              ...(b.ciphertextBlob !== undefined ? { ciphertextBlob: b.ciphertextBlob } : {}),
              ...(b.ciphertextBlobPath !== undefined ? { ciphertextBlobPath: b.ciphertextBlobPath } : {}),
              ...(b.encryptionContext ? { encryptionContext: b.encryptionContext } : {}),
              ...(signal ? { signal } : {}),
              ...(timeoutMs !== undefined ? { timeoutMs } : {}),
            },
            settings,
            connection,
          ),
        ),
      );
      const keys = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        for (const k of keys) k.dispose();
        throw failed.reason;
      }
      // Two blobs of one key (the same blob listed twice) make one entry: the spare copy is zeroed.
      const ring = createOwningKeyRing();
      for (const k of keys) {
        const held = ring.get(k.metadata.keyId);
        if (held && held !== k) held.dispose();
        ring.add(k);
      }
      return ring;
    },
    async prepare() {
      live();
      return engine.prepare(settings.rsaModulusLength);
    },
    clear() {
      engine.clear();
    },
    async close() {
      if (closed) return;
      closed = true;
      engine.close();
      if (kms && !options.kms) kms.destroy();
      if (nsm?.owned) await nsm.nsm.close();
    },
  };
}
