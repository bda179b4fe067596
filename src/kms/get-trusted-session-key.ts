import type { RsaModulusLength } from './keypair.js';
import { checkModulus } from './keypair.js';
import { kmsClientOf, nsmOf, settingsOf, TskEngine, type TrustedSessionKeyClientOptions, type TrustedSessionKeyRequest, type TskConnection } from './trusted-session-key-client.js';
import type { TrustedSessionKey } from './trusted-session-key.js';

/** Options of {@link getTrustedSessionKey}: a {@link TrustedSessionKeyClientOptions} and a {@link TrustedSessionKeyRequest} in one object. */
export interface GetTrustedSessionKeyOptions extends Omit<TrustedSessionKeyClientOptions, 'timeoutMs' | 'verifier'>, TrustedSessionKeyRequest {}

// The lazily made default engine behind the convenience functions. State lives in this object,
// not in loose module variables; a long-lived service should hold its own createTrustedSessionKeyClient().
let defaultEngine: TskEngine | undefined;
const engine = () => (defaultEngine ??= new TskEngine());

/**
 * The library's main entry point, run inside the enclave: one call to a default
 * {@link createTrustedSessionKeyClient} that builds its KMS client and opens the NSM for this call
 * only. It makes an ephemeral RSA key pair, asks the NSM for an attestation document binding its
 * public key, calls KMS `Decrypt` with `Recipient` over vsock to the parent's vsock-proxy (TLS end to
 * end) while checking that document offline and auditing the pinned key (`auditKmsKey`, once per
 * key and `keyAuditIntervalMs` on the default client; `ERR_KMS_KEY_UNSAFE` when someone other than the
 * admitted enclave could learn or mint it), checks that KMS answered for the pinned and audited key,
 * and opens the returned CMS envelope with the ephemeral private key. `tsk.metadata.timings` has the steps.
 *
 * Concurrent calls for the same blob, key, region and context share one KMS
 * request; each caller gets its own {@link TrustedSessionKey} copy to dispose,
 * and keeps its own `signal` and `timeoutMs`. The shared request belongs to no
 * caller: it runs until its last waiter has left (then it is cancelled) or
 * until its own deadline (the `timeoutMs` of the caller that started it); a
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
  const settings = settingsOf(options);
  const connect = (): TskConnection => {
    const kms = kmsClientOf(options);
    const { nsm, owned } = nsmOf(options);
    return {
      kms,
      nsm,
      async release() {
        if (owned) await nsm.close();
        if (!options.kms) kms.destroy();
      },
    };
  };
  return engine().get(options, settings, connect);
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
  return engine().prepare(checkModulus(options.rsaModulusLength ?? 2048));
}

/**
 * Drops the keys getTrustedSessionKey() cached (zeroing them) and its prepared key pairs.
 *
 * @example
 * ```ts
 * clearTrustedSessionKeyCache(); // e.g. on shutdown, or after rotating the TSK
 * ```
 */
export function clearTrustedSessionKeyCache(): void {
  defaultEngine?.clear();
}
