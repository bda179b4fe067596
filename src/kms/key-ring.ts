import { NitroEnclaveError } from '../errors.js';
import { isTrustedSessionKey, type TrustedSessionKey } from './trusted-session-key.js';

/**
 * A key a ring holds (and the codec takes): a {@link TrustedSessionKey} (of this copy of the
 * package). Not any object with `encrypt`/`decrypt`: payloads and sealed states are sealed in their
 * own envelope domains, which only the key itself can write (docs/formats.md), so no
 * `tsk.encrypt(x, aad)` is ever a payload or a state.
 */
export type CodecKey = TrustedSessionKey;

/**
 * Trusted Session Keys by key id, growing at run time: what a TSK rotation hands the codec
 * (`createTskPayloadCodec`) and sealed state (`sealState`, `openState`,
 * `serveSealedActivities`). The newest key (the last added) seals; every key held opens what it
 * sealed, chosen by the key id in the envelope. Keep an old key in the ring for as long as any
 * workflow history (or a replay test) still holds payloads or states sealed with it.
 */
export interface TskKeyRing {
  /** Adds a key (idempotent per key id); it becomes the newest. */
  add(key: CodecKey): void;
  /** The key with this id (16 hex characters), if held. */
  get(keyId: string): CodecKey | undefined;
  /** The last key added; undefined while empty. */
  readonly newest: CodecKey | undefined;
  /** Key ids held, oldest first. Key ids are public (derived one-way from the key). */
  readonly keyIds: readonly string[];
}

/**
 * A key ring that owns its keys: `TrustedSessionKeyClient.getKeyRing` returns one. `dispose()`
 * zeroes every key in it (keys added later included), after which it seals and opens nothing.
 */
export interface TrustedSessionKeyRing extends TskKeyRing {
  /** Zeroes every key held and empties the ring. */
  dispose(): void;
}

function checkKey(key: unknown): asserts key is CodecKey {
  if (!isTrustedSessionKey(key)) throw new TypeError('keys must be TrustedSessionKeys (from getTrustedSessionKey, of this copy of nitro-enclave-sdk)');
}

/**
 * Creates a key ring for `createTskPayloadCodec` and sealed state, e.g. to add a rotated
 * key to a running worker or enclave without restarting it. To obtain the keys of a rotation from
 * their blobs, use `TrustedSessionKeyClient.getKeyRing`.
 *
 * @example
 * ```ts
 * const ring = createTskKeyRing([oldTsk]);
 * const codec = createTskPayloadCodec({ keys: ring });
 * // after rotation: new payloads use newTsk, old histories still decode with oldTsk
 * ring.add(newTsk);
 * ```
 */
export function createTskKeyRing(keys: Iterable<CodecKey> = []): TskKeyRing {
  return createOwningKeyRing(keys);
}

/** The ring of {@link createTskKeyRing}, with `dispose()` for whoever owns the keys (the TSK client). */
export function createOwningKeyRing(keys: Iterable<CodecKey> = []): TrustedSessionKeyRing {
  const byId = new Map<string, CodecKey>();
  let newest: CodecKey | undefined;
  const ring: TrustedSessionKeyRing = {
    add(key) {
      checkKey(key);
      byId.delete(key.metadata.keyId);
      byId.set(key.metadata.keyId, key);
      newest = key;
    },
    get: (keyId) => byId.get(keyId),
    get newest() {
      return newest;
    },
    get keyIds() {
      return [...byId.keys()];
    },
    dispose() {
      for (const key of byId.values()) key.dispose();
      byId.clear();
      newest = undefined;
    },
  };
  for (const key of keys) ring.add(key);
  return ring;
}

/** Whether `value` has the shape of a {@link TskKeyRing} (any implementation: rings may be the caller's own). */
export function isTskKeyRing(value: unknown): value is TskKeyRing {
  const r = value as Partial<TskKeyRing> | null;
  return typeof r === 'object' && r !== null && typeof r.add === 'function' && typeof r.get === 'function' && 'newest' in r && 'keyIds' in r;
}

/** A ring given by the caller is used as is (so it can grow); keys are wrapped in a new ring. */
export function toKeyRing(keys: unknown): TskKeyRing {
  if (isTskKeyRing(keys)) return keys;
  if (keys && typeof (keys as Iterable<unknown>)[Symbol.iterator] === 'function') return createTskKeyRing(keys as Iterable<CodecKey>);
  checkKey(keys);
  return createTskKeyRing([keys]);
}

function ringOf(ring: TskKeyRing): TskKeyRing {
  if (!isTskKeyRing(ring)) throw new TypeError('ring must be a TskKeyRing (createTskKeyRing, or TrustedSessionKeyClient.getKeyRing)');
  return ring;
}

/**
 * `tsk.encrypt(plaintext, aad)` with the ring's newest key: envelopes made after a rotation use the
 * new key, and {@link decryptWithKeyRing} opens them and the older ones.
 *
 * @example
 * ```ts
 * const envelope = encryptWithKeyRing(ring, new TextEncoder().encode('note'), aad);
 * ```
 */
export function encryptWithKeyRing(ring: TskKeyRing, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  const key = ringOf(ring).newest;
  if (!isTrustedSessionKey(key)) throw new TypeError('ring is empty: add a key before encrypting');
  return key.encrypt(plaintext, aad);
}

/**
 * `tsk.decrypt(envelope, aad)` with the ring's key that the envelope names (its clear key id, v1 or
 * v2): an envelope of a key the ring does not hold is `ERR_TSK_WRONG_KEY`, naming the keys it holds
 * (decided from clear bytes: it tells the operator which key to load, and nothing opens).
 *
 * @example
 * ```ts
 * const plaintext = decryptWithKeyRing(ring, envelope, aad); // sealed before or after the rotation
 * ```
 */
export function decryptWithKeyRing(ring: TskKeyRing, envelope: Uint8Array, aad?: Uint8Array): Uint8Array {
  ringOf(ring);
  if (!(envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
  if (envelope.length < 9) throw new NitroEnclaveError('ERR_TSK_MALFORMED', `envelope is ${envelope.length} bytes, shorter than its header`);
  const id = Buffer.from(envelope.subarray(1, 9)).toString('hex');
  const key = ring.get(id);
  if (key === undefined) throw new NitroEnclaveError('ERR_TSK_WRONG_KEY', `envelope was sealed with key id ${id}, not in this key ring (${ring.keyIds.join(', ')})`);
  checkKey(key);
  return key.decrypt(envelope, aad);
}
