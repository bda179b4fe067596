import { generateKeyPair, type KeyObject } from 'node:crypto';

/** RSA modulus sizes KMS accepts for the `Recipient` key (`RSAES_OAEP_SHA_256`). */
export type RsaModulusLength = 2048 | 3072 | 4096;

/** An ephemeral RSA key pair: the private key stays in this process, the SPKI goes into the attestation document. */
export interface EphemeralKeyPair {
  readonly privateKey: KeyObject;
  /** DER SubjectPublicKeyInfo, as KMS expects in the document's `public_key`. */
  readonly spki: Uint8Array;
  readonly modulusLength: RsaModulusLength;
}

export function checkModulus(bits: unknown): RsaModulusLength {
  if (bits !== 2048 && bits !== 3072 && bits !== 4096) throw new TypeError('rsaModulusLength must be 2048, 3072 or 4096');
  return bits;
}

/**
 * Generates an RSA key pair with node:crypto on libuv's thread pool (the event
 * loop keeps running). node:crypto was chosen over node-forge on measurement:
 * see `npm run bench` (docs/performance.md).
 *
 * @example
 * ```ts
 * const { privateKey, spki } = await generateEphemeralKeyPair(3072);
 * ```
 */
export function generateEphemeralKeyPair(modulusLength: RsaModulusLength = 2048): Promise<EphemeralKeyPair> {
  return new Promise((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: checkModulus(modulusLength), publicExponent: 0x10001 }, (err, publicKey, privateKey) => {
      if (err) return reject(err);
      resolve({ privateKey, spki: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })), modulusLength });
    });
  });
}

/**
 * Keeps one key pair per modulus length generated ahead of time, so key
 * generation is off the critical path: `take()` hands out the prepared pair
 * (each pair is used once) and starts making the next one.
 *
 * @example
 * ```ts
 * const pool = new EphemeralKeyPool();
 * await pool.prepare(2048);           // ahead of time
 * const pair = await pool.take(2048); // instant
 * pool.release();                     // after the request: prepare the next one
 * ```
 */
export class EphemeralKeyPool {
  private readonly ready = new Map<RsaModulusLength, Promise<EphemeralKeyPair>>();
  private readonly taken = new Set<RsaModulusLength>();
  private inUse = 0;

  /** Starts generating a pair for this size if none is prepared. */
  prepare(modulusLength: RsaModulusLength = 2048): Promise<void> {
    checkModulus(modulusLength);
    let next = this.ready.get(modulusLength);
    if (!next) {
      next = generateEphemeralKeyPair(modulusLength);
      next.catch(() => this.ready.delete(modulusLength));
      this.ready.set(modulusLength, next);
    }
    return next.then(() => undefined);
  }

  /**
   * The prepared pair (or a fresh one), never handed out twice. Taking a
   * prepared pair marks its size for {@link release}: callers that opted in with
   * prepare() keep key generation off their critical path; one-shot callers
   * pay for exactly one key pair.
   */
  take(modulusLength: RsaModulusLength = 2048): Promise<EphemeralKeyPair> {
    this.inUse++;
    const prepared = this.ready.get(modulusLength);
    if (!prepared) return generateEphemeralKeyPair(modulusLength);
    this.ready.delete(modulusLength);
    this.taken.add(modulusLength);
    return prepared;
  }

  /**
   * Says that a request that called {@link take} is over (call it exactly once per `take`, whether
   * the request succeeded or not). Once no request is in flight, starts preparing the next pair for
   * every size taken from the prepared ones: generating during a request would take a core from it
   * (RSA key generation is hundreds of ms of CPU; `npm run bench` measures the difference).
   */
  release(): void {
    this.inUse = Math.max(0, this.inUse - 1);
    if (this.inUse > 0) return;
    for (const bits of this.taken) void this.prepare(bits).catch(() => {});
    this.taken.clear();
  }

  /** Drops prepared pairs. */
  clear(): void {
    this.ready.clear();
    this.taken.clear();
  }
}
