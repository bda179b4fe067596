import type { CipherSuite } from '@hpke/core';
import { isReservedUserData, RESERVED_USER_DATA_PREFIX } from '../internal/reserved.js';
import { NitroEnclaveError } from '../errors.js';
import { buildInfo, DEFAULT_SUITE, encodeAttestedKey, optionalInfo, parseMessage, sameBytes, sha256, suiteByName, KEY_ID_LENGTH, MESSAGE_VERSION, type MessageStamp, type SealSuite, type SealSuiteName, type WebCryptoKeyPair } from './format.js';

/** The part of an NSM client the receiver needs: `NsmClient` from `nitro-enclave-sdk/nsm` fits. */
export interface AttestingNsm {
  attestation(request: { publicKey?: Uint8Array; userData?: Uint8Array; nonce?: Uint8Array }): Promise<Uint8Array>;
}

/** Options of {@link createAttestedReceiver}. */
export interface AttestedReceiverOptions {
  /** The Nitro Secure Module that signs the documents (`openNsm()` in an enclave, the simulated NSM in tests). */
  nsm: AttestingNsm;
  /** HPKE suite of the receiver's keys. Default `'P256-SHA256-AES256GCM'`. */
  suite?: SealSuiteName;
  /**
   * After `rotate()`, the previous key still opens messages for this long, so
   * that clients who verified a document just before the rotation are not
   * cut off. `0` drops it at once. Default 60 000 (one minute).
   */
  previousKeyGraceMs?: number;
  /** The clock that times the grace period and the replay window. Default `() => new Date()`. */
  clock?: () => Date;
  /**
   * Replay protection (opt-in). When set, `open()` accepts only messages stamped (version 2, as
   * `sealToEnclave` writes) within this many ms of the receiver's clock, either way, and each message
   * id once: a second `open()` of the same message fails with `ERR_SEAL_REPLAYED`, one stamped outside
   * the window with `ERR_SEAL_STALE`, an unstamped version 1 message with `ERR_SEAL_UNSUPPORTED_VERSION`.
   * The time and id are trusted only after the message authenticated. Without it (the default), the
   * same message opens any number of times: whoever relays it (the parent) can replay it.
   */
  replayWindowMs?: number;
  /**
   * Message ids remembered for `replayWindowMs` (default 100 000, about 9 MB). When full, the oldest is forgotten and
   * every message stamped at or before its time is refused as `ERR_SEAL_STALE` (fails closed).
   */
  maxReplayCacheEntries?: number;
}

/** An enclave-side HPKE key pair that attests itself; see {@link createAttestedReceiver}. */
export interface AttestedReceiver {
  /** The suite of this receiver's keys. */
  readonly suite: SealSuiteName;
  /** The current attested key: the bytes `attest()` puts in the document's `public_key`. */
  readonly publicKey: Uint8Array;
  /** An NSM attestation document binding `nonce` and the current public key. */
  attest(nonce?: Uint8Array, options?: { userData?: Uint8Array }): Promise<Uint8Array>;
  /**
   * Opens a message from `sealToEnclave()`. Resolves with a fresh plaintext
   * buffer that the caller owns: zero it (`plaintext.fill(0)`) when done.
   */
  open(message: Uint8Array, options?: { info?: Uint8Array }): Promise<Uint8Array>;
  /** Makes a new key pair; the previous one is kept for `previousKeyGraceMs`, then dropped. */
  rotate(): Promise<void>;
}

interface KeySlot {
  keyPair: WebCryptoKeyPair;
  attestedKey: Uint8Array;
  keyHash: Uint8Array;
  /** ms since epoch after which the slot no longer opens; null for the current key. */
  expiresAt: number | null;
}

async function makeSlot(suite: SealSuite): Promise<KeySlot> {
  // Non-extractable: the private key can be used for ECDH but never exported from this process.
  const keyPair = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: suite.curve }, false, ['deriveBits'])) as WebCryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey));
  const attestedKey = encodeAttestedKey(suite, publicKey);
  return { keyPair, attestedKey, keyHash: await sha256(attestedKey), expiresAt: null };
}

/**
 * Creates the enclave side of attested sealing: an HPKE key pair made inside
 * the enclave with WebCrypto (the private key is non-extractable and never
 * leaves the process), attestation documents from the NSM that bind it, and
 * `open()` for messages from {@link sealToEnclave}. Keys rotate on demand;
 * a message for a key that was rotated away (after its grace period) fails
 * with `ERR_SEAL_KEY_NOT_FOUND`.
 *
 * @example
 * ```ts
 * import { openNsm } from 'nitro-enclave-sdk/nsm';
 * import { createAttestedReceiver } from 'nitro-enclave-sdk/seal';
 *
 * const receiver = await createAttestedReceiver({ nsm: await openNsm() });
 * const document = await receiver.attest(clientNonce); // send to the client
 * const plaintext = await receiver.open(sealedMessage);
 * try { use(plaintext); } finally { plaintext.fill(0); }
 * ```
 */
export async function createAttestedReceiver(options: AttestedReceiverOptions): Promise<AttestedReceiver> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object with `nsm`');
  const { nsm } = options;
  if (!nsm || typeof nsm.attestation !== 'function') throw new TypeError('nsm must have an attestation() method (an NsmClient)');
  const suite = suiteByName(options.suite ?? DEFAULT_SUITE);
  const graceMs = options.previousKeyGraceMs ?? 60_000;
  if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0) throw new TypeError('previousKeyGraceMs must be a non-negative finite number of milliseconds');
  const clock = options.clock ?? (() => new Date());
  if (typeof clock !== 'function') throw new TypeError('clock must be a function returning a Date');

  const replayWindowMs = options.replayWindowMs;
  if (replayWindowMs !== undefined && (!Number.isSafeInteger(replayWindowMs) || replayWindowMs <= 0)) throw new TypeError('replayWindowMs must be a positive integer of milliseconds');
  const maxEntries = options.maxReplayCacheEntries ?? 100_000;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new TypeError('maxReplayCacheEntries must be a positive integer');
  if (options.maxReplayCacheEntries !== undefined && replayWindowMs === undefined) throw new TypeError('maxReplayCacheEntries needs replayWindowMs');
  const replay = replayWindowMs === undefined ? undefined : new ReplayCache(replayWindowMs, maxEntries);

  let current = await makeSlot(suite);
  let previous: KeySlot | null = null;

  function slotFor(keyId: Uint8Array): KeySlot {
    if (sameBytes(current.keyHash.subarray(0, KEY_ID_LENGTH), keyId)) return current;
    if (previous && sameBytes(previous.keyHash.subarray(0, KEY_ID_LENGTH), keyId)) {
      if (clock().getTime() <= previous.expiresAt!) return previous;
      previous = null;
    }
    throw new NitroEnclaveError('ERR_SEAL_KEY_NOT_FOUND', 'the sealed message is for a key this receiver does not hold (rotated away, or another enclave\'s)');
  }

  async function open(hpke: CipherSuite, slot: KeySlot, enc: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, appInfo: Uint8Array): Promise<Uint8Array> {
    try {
      const context = await hpke.createRecipientContext({ recipientKey: slot.keyPair, enc, info: buildInfo(slot.keyHash, appInfo) });
      return new Uint8Array(await context.open(ciphertext, aad));
    } catch {
      // No cause: the library's error says nothing useful, and nothing about the plaintext may leak.
      throw new NitroEnclaveError('ERR_SEAL_DECRYPT_FAILED', 'the sealed message does not open: tampered, sealed with other info, or not for this key');
    }
  }

  return {
    suite: suite.name,
    get publicKey() {
      return current.attestedKey.slice();
    },
    async attest(nonce, attestOptions) {
      if (nonce !== undefined && !(nonce instanceof Uint8Array)) throw new TypeError('nonce must be a Uint8Array');
      const userData = attestOptions?.userData;
      if (userData !== undefined && !(userData instanceof Uint8Array)) throw new TypeError('userData must be a Uint8Array');
      // Caller-chosen bytes never enter a domain the library uses: a document whose user_data is,
      // say, an attested-TLS certificate binding would vouch for a key the caller chose.
      if (userData !== undefined && isReservedUserData(userData)) throw new TypeError(`userData must not begin with "${RESERVED_USER_DATA_PREFIX}": that prefix is reserved for the library's own bindings`);
      return nsm.attestation({
        publicKey: current.attestedKey,
        ...(nonce !== undefined && { nonce }),
        ...(userData !== undefined && { userData }),
      });
    },
    async open(message, openOptions) {
      const appInfo = optionalInfo(openOptions?.info);
      const parsed = parseMessage(message);
      if (parsed.suite.name !== suite.name) {
        throw new NitroEnclaveError('ERR_SEAL_KEY_NOT_FOUND', `the sealed message uses ${parsed.suite.name}; this receiver's keys are ${suite.name}`);
      }
      if (replay && !parsed.stamp) {
        throw new NitroEnclaveError('ERR_SEAL_UNSUPPORTED_VERSION', `the sealed message has version ${parsed.version}, which carries no time or message id; this receiver refuses replays and needs version ${MESSAGE_VERSION}`);
      }
      const slot = slotFor(parsed.keyId);
      const plaintext = await open(suite.hpke, slot, parsed.enc, parsed.aad, parsed.ciphertext, appInfo);
      if (replay) {
        // Only now are the time and id authenticated (they are in the aad).
        try {
          replay.admit(parsed.stamp!, clock().getTime());
        } catch (err) {
          plaintext.fill(0);
          throw err;
        }
      }
      return plaintext;
    },
    async rotate() {
      const next = await makeSlot(suite);
      previous = graceMs > 0 ? { ...current, expiresAt: clock().getTime() + graceMs } : null;
      current = next;
    },
  };
}

/**
 * The message ids seen within the replay window, at most `maxEntries`. Entries leave when their time
 * falls out of the window (a replay of them is then stale anyway) or, when full, oldest first; a
 * forgotten entry raises `floor`, and nothing stamped at or before it opens any more.
 */
class ReplayCache {
  readonly #seen = new Map<string, number>();
  #floor = -Infinity;

  constructor(
    readonly windowMs: number,
    readonly maxEntries: number,
  ) {}

  admit(stamp: MessageStamp, nowMs: number): void {
    const at = stamp.sealedAtMs;
    if (Math.abs(nowMs - at) > this.windowMs) {
      throw new NitroEnclaveError('ERR_SEAL_STALE', `the message was sealed at ${new Date(at).toISOString()}, outside the ${this.windowMs} ms replay window around ${new Date(nowMs).toISOString()}`);
    }
    if (at <= this.#floor) {
      throw new NitroEnclaveError('ERR_SEAL_STALE', `the message was sealed at ${new Date(at).toISOString()}, before the oldest time the full replay cache still covers`);
    }
    // Expired entries first (roughly in arrival order; the size bound covers the rest).
    for (const [id, t] of this.#seen) {
      if (nowMs - t <= this.windowMs) break;
      this.#seen.delete(id);
    }
    const key = cacheKey(stamp.messageId);
    if (this.#seen.has(key)) throw new NitroEnclaveError('ERR_SEAL_REPLAYED', 'this message was opened before (same message id within the replay window)');
    if (this.#seen.size >= this.maxEntries) {
      const [oldest, t] = this.#seen.entries().next().value as [string, number];
      this.#seen.delete(oldest);
      this.#floor = Math.max(this.#floor, t);
      if (at <= this.#floor) throw new NitroEnclaveError('ERR_SEAL_STALE', `the message was sealed at ${new Date(at).toISOString()}, before the oldest time the full replay cache still covers`);
    }
    this.#seen.set(key, at);
  }
}

// A flat 16-character string (one char per byte): about 86 bytes per cache entry with the Map's own,
// where a hex string built by concatenation would keep a rope of 16 pieces (about 640 bytes).
function cacheKey(b: Uint8Array): string {
  return String.fromCharCode(...b);
}
