import { isTrustedSessionKey, type TrustedSessionKey } from '../kms/trusted-session-key.js';

/**
 * A key the codec takes: a {@link TrustedSessionKey} (of this copy of the package). Not any object
 * with `encrypt`/`decrypt`: payloads are sealed in the codec's own envelope domain, which only the
 * key itself can write (docs/formats.md), so no `tsk.encrypt(x, aad)` is ever a payload.
 */
export type CodecKey = TrustedSessionKey;

/**
 * Trusted Session Keys by key id, growing at run time. The newest key (the
 * last added) encrypts; every key held decrypts what it sealed. Keep an old
 * key in the ring for as long as any workflow history (or a replay test)
 * still holds payloads sealed with it.
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

function checkKey(key: unknown): asserts key is CodecKey {
  if (!isTrustedSessionKey(key)) throw new TypeError('keys must be TrustedSessionKeys (from getTrustedSessionKey, of this copy of nitro-enclave-sdk)');
}

/**
 * Creates a key ring for {@link createTskPayloadCodec}, e.g. to add a rotated
 * key to a running worker without restarting it.
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
  const byId = new Map<string, CodecKey>();
  let newest: CodecKey | undefined;
  const ring: TskKeyRing = {
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
  };
  for (const key of keys) ring.add(key);
  return ring;
}

/** A ring given by the caller is used as is (so it can grow); keys are wrapped in a new ring. */
export function toKeyRing(keys: unknown): TskKeyRing {
  const r = keys as Partial<TskKeyRing> | null;
  if (r && typeof r.add === 'function' && typeof r.get === 'function' && 'newest' in r && 'keyIds' in r) return r as TskKeyRing;
  if (keys && typeof (keys as Iterable<unknown>)[Symbol.iterator] === 'function') return createTskKeyRing(keys as Iterable<CodecKey>);
  checkKey(keys);
  return createTskKeyRing([keys]);
}
