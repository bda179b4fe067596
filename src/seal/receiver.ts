import type { CipherSuite } from '@hpke/core';
import { NitroEnclaveError } from '../errors.js';
import { buildInfo, DEFAULT_SUITE, encodeAttestedKey, optionalInfo, parseMessage, sameBytes, sha256, suiteByName, KEY_ID_LENGTH, type SealSuite, type SealSuiteName, type WebCryptoKeyPair } from './format.js';

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
  /** The clock that times the grace period. Default `() => new Date()`. */
  clock?: () => Date;
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
      const slot = slotFor(parsed.keyId);
      return open(suite.hpke, slot, parsed.enc, parsed.aad, parsed.ciphertext, appInfo);
    },
    async rotate() {
      const next = await makeSlot(suite);
      previous = graceMs > 0 ? { ...current, expiresAt: clock().getTime() + graceMs } : null;
      current = next;
    },
  };
}
