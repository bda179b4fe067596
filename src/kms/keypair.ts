import { constants, generateKeyPair, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';

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

const OAEP = { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' } as const;

/**
 * Does one private-key operation with a fresh pair on the calling thread, so the one that counts (the
 * CMS unwrap) does not pay OpenSSL's first-use set-up. The first RSA private operation of a key on a
 * thread costs about half an operation more than the next ones (RSA-2048 OAEP decrypt: 1.01 against
 * 0.67 ms, measured); the set-up (blinding) belongs to the thread, so a warm-up on the thread pool does
 * not help the main thread. The operation is the one the key is for: an RSAES-OAEP-SHA-256 round trip
 * of 32 zero bytes to itself, both results zeroed; nothing leaves the process.
 *
 * @example
 * ```ts
 * const pair = await generateEphemeralKeyPair(2048);
 * warmPrivateKey(pair); // ahead of the request, on the thread that will unwrap
 * ```
 */
export function warmPrivateKey(pair: EphemeralKeyPair): void {
  const wrapped = publicEncrypt({ key: pair.privateKey, ...OAEP }, new Uint8Array(32));
  privateDecrypt({ key: pair.privateKey, ...OAEP }, wrapped).fill(0);
  wrapped.fill(0);
}

/** Where an {@link EphemeralKeyPool} gets its pairs and how it warms them (both injectable for tests). */
export interface EphemeralKeyPoolOptions {
  /** Makes a pair. Default {@link generateEphemeralKeyPair} (libuv's thread pool). */
  generate?: (modulusLength: RsaModulusLength) => Promise<EphemeralKeyPair>;
  /**
   * Runs on the JavaScript thread once a prepared pair exists, if nobody has taken it yet (a request
   * waiting for the pair would only wait longer) and the pool was not cleared. Default
   * {@link warmPrivateKey}. A warm-up that throws leaves the pair as it was: it only saves time.
   */
  warm?: (pair: EphemeralKeyPair) => void;
}

/**
 * Keeps one key pair per modulus length generated ahead of time, so key
 * generation is off the critical path: `take()` hands out the prepared pair
 * (each pair is used once) and starts making the next one. A pair prepared ahead has done one
 * private-key operation on this thread ({@link warmPrivateKey}), so its first real one is not slower; a
 * pair a request is already waiting for, or a fresh one for a caller that did not prepare, is handed
 * out as generated (warming it would only add time).
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
  private readonly generate: (modulusLength: RsaModulusLength) => Promise<EphemeralKeyPair>;
  private readonly warm: (pair: EphemeralKeyPair) => void;

  constructor(options: EphemeralKeyPoolOptions = {}) {
    this.generate = options.generate ?? generateEphemeralKeyPair;
    this.warm = options.warm ?? warmPrivateKey;
  }

  /** Starts generating a pair for this size if none is prepared. */
  prepare(modulusLength: RsaModulusLength = 2048): Promise<void> {
    checkModulus(modulusLength);
    let next = this.ready.get(modulusLength);
    if (!next) {
      // Still ours when it settles: not taken (take() removes it) and not cleared or replaced.
      const waiting = () => this.ready.get(modulusLength) === mine;
      const mine: Promise<EphemeralKeyPair> = this.generate(modulusLength).then((pair) => {
        if (waiting()) {
          try {
            this.warm(pair);
          } catch {
            // Only time is lost: the pair is as good as it was.
          }
        }
        return pair;
      });
      mine.catch(() => {
        if (waiting()) this.ready.delete(modulusLength);
      });
      this.ready.set(modulusLength, (next = mine));
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
    if (!prepared) return this.generate(modulusLength);
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
