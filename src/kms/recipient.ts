import {
  DecryptCommand,
  DeriveSharedSecretCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyPairCommand,
  GenerateRandomCommand,
  type KMSClient,
  type DataKeyPairSpec,
  type DataKeySpec,
} from '@aws-sdk/client-kms';
import { NitroEnclaveError } from '../errors.js';
import { createAttestationVerifier, type AttestationVerifier, type VerifiedAttestation } from '../attestation/index.node.js'; // Node-only module: the node:crypto verifier
import type { TrustAnchor } from '../attestation/trust.js';
import type { NsmClient } from '../nsm/client.js';
import { decryptCiphertextForRecipient } from './cms.js';
import { EphemeralKeyPool, checkModulus, type EphemeralKeyPair, type RsaModulusLength } from './keypair.js';
import { withRetry, type RetryPolicy } from './retry.js';
import { explainAccessDenied } from './diagnose.js';
import { checkRegion, parsePinnedKeyArn, responseMatches, type PinnedKey } from './key-arn.js';

/** Options of {@link createRecipientClient}: the KMS client or how to build one, the NSM, and the pinned key. */
export interface RecipientOptions {
  kms: KMSClient;
  nsm: NsmClient;
  rsaModulusLength?: RsaModulusLength;
  /** Roots for the self-check of our own document. Default: the AWS Nitro root (tests: the simulated enclave's root). */
  trustAnchors?: TrustAnchor[];
  /** Where ephemeral key pairs come from; default a fresh pool (`prepare()` fills it ahead of time). */
  keyPool?: EphemeralKeyPool;
  verifier?: AttestationVerifier;
  retry?: RetryPolicy;
  /** Per-call deadline in ms. Default 30 000. */
  timeoutMs?: number;
  /** The time source for deadlines, retries and the self-check. Default `() => new Date()`. */
  clock?: () => Date;
  /** On AccessDenied, read the key policy to say which condition failed. Default true. */
  diagnose?: boolean;
}

/** Per-call options of a {@link RecipientClient} method: cancellation and deadline. */
export interface CallOptions {
  signal?: AbortSignal;
  /** Deadline of this call in ms (all attempts). Default: the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Called with each failed attempt's error (e.g. to report the last one when a caller's own deadline passes first). */
  onAttemptError?: (err: unknown) => void;
  /**
   * Called once KMS has answered for the pinned key, before the released envelope is opened: if it
   * rejects, the envelope is zeroed unopened and the call fails with its error. The Trusted Session
   * Key client waits here for the audit of the key (`auditKmsKey`) that runs alongside the request.
   */
  admit?: (answer: { readonly KeyId?: string }) => Promise<void>;
}

interface AttestedCall extends CallOptions {
  /** The key the caller pinned: KMS's answer must name it (ERR_KMS_KEY_MISMATCH otherwise). */
  pinned?: PinnedKey;
}

type WithKeyId = { KeyId?: string };

/** What an attested call produced: the opened plaintext (caller zeroes it), the verified facts of our own document, timings. */
export interface RecipientResult<R> {
  plaintext: Uint8Array;
  response: R;
  attestation: VerifiedAttestation;
  timings: { keyPairMs: number; attestationMs: number; verifyMs: number; kmsMs: number; cmsMs: number; attempts: number };
}

type WithRecipient = WithKeyId & { CiphertextForRecipient?: Uint8Array; Plaintext?: Uint8Array; PrivateKeyPlaintext?: Uint8Array; SharedSecret?: Uint8Array };

/** Sends one KMS request carrying this `Recipient`. */
type SendWithRecipient<R> = (recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256'; AttestationDocument: Uint8Array }, signal: AbortSignal) => Promise<R>;

/** Zeroes every field of a KMS answer that can carry key material, so none of it outlives a refusal. */
function zeroSecrets(response: WithRecipient): void {
  for (const field of ['CiphertextForRecipient', 'Plaintext', 'PrivateKeyPlaintext', 'SharedSecret'] as const) response[field]?.fill(0);
}

/** How the self-check of our own document failed, as the call reports it. */
function selfCheckFailure(err: unknown): NitroEnclaveError {
  const code = err instanceof NitroEnclaveError ? err.code : 'ERR_ATTESTATION_MALFORMED';
  const reason = err instanceof NitroEnclaveError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
  return new NitroEnclaveError(code, `our own attestation document failed the offline check, so nothing KMS answered was used (${reason})`, { cause: err });
}

/**
 * Starts the self-check on the next turn of the event loop, so the KMS request is on its way before
 * the check's synchronous parts (decoding, parsing, any inline crypto) take the thread. `result`
 * settles whatever `verify` does (throws, rejects with a non-Error, never answers: then at what is
 * left of the deadline), so the call fails closed and never hangs; a failure aborts `failed`.
 */
function startSelfCheck(verify: () => Promise<VerifiedAttestation>, remainingMs: () => number, failed: AbortController): { result: Promise<VerifiedAttestation | NitroEnclaveError>; verifyMs: () => number } {
  let verifyMs = 0;
  const result = new Promise<VerifiedAttestation | NitroEnclaveError>((resolve) => {
    let limit: ReturnType<typeof setTimeout> | undefined;
    const done = (outcome: VerifiedAttestation | NitroEnclaveError) => {
      clearTimeout(limit);
      if (outcome instanceof NitroEnclaveError) failed.abort(outcome);
      resolve(outcome);
    };
    setImmediate(() => {
      const start = performance.now();
      try {
        limit = setTimeout(() => done(new NitroEnclaveError('ERR_KMS_TIMEOUT', 'the offline check of our own attestation document did not finish before the deadline; nothing KMS answered was used')), Math.max(0, remainingMs()));
      } catch (err) {
        done(selfCheckFailure(err)); // an injected clock that throws
        return;
      }
      Promise.resolve()
        .then(verify)
        .then(
          (facts) => {
            verifyMs = performance.now() - start;
            done(facts);
          },
          (err: unknown) => done(selfCheckFailure(err)),
        );
    });
  });
  return { result, verifyMs: () => verifyMs };
}

/**
 * The attested-call core: make (or take) an ephemeral RSA key pair, get an
 * NSM document binding its public key, verify our own document offline
 * (catches a broken NSM or clock; it runs while the KMS request is in flight,
 * and nothing from the answer is used until it passes), call KMS with `Recipient`,
 * insist that no plaintext came back and that the answer names the pinned
 * key, and only then open `CiphertextForRecipient`.
 *
 * Every operation that takes a key requires `keyId` to be a key ARN or alias
 * ARN (`TypeError` otherwise, before anything is sent): a bare alias or key id
 * resolves in the account of whatever credentials the parent serves. The ARN
 * goes to KMS as `KeyId`, and the answer's `KeyId` must name the same
 * partition, region and account (and key, for a key ARN), else the released
 * envelope is zeroed unopened and the call fails with `ERR_KMS_KEY_MISMATCH`.
 *
 * @example
 * ```ts
 * const recipient = createRecipientClient({ kms: new KMSClient({ region, requestHandler: createKmsRequestHandler({ region }) }), nsm: openNsm() });
 * const { plaintext, response } = await recipient.generateDataKey({ keyId: 'arn:aws:kms:us-east-1:111122223333:alias/app-data' });
 * // store response.CiphertextBlob; use plaintext inside the enclave, then plaintext.fill(0)
 * ```
 */
export function createRecipientClient(options: RecipientOptions) {
  const { kms, nsm } = options;
  if (!kms || typeof kms.send !== 'function') throw new TypeError('kms must be a KMSClient');
  if (!nsm || typeof nsm.attestation !== 'function') throw new TypeError('nsm must be an NSM client');
  const bits = checkModulus(options.rsaModulusLength ?? 2048);
  const pool = options.keyPool ?? new EphemeralKeyPool();
  const verifier = options.verifier ?? createAttestationVerifier();
  const clock = options.clock ?? (() => new Date());
  const defaultTimeoutMs = options.timeoutMs ?? 30_000;
  if (!Number.isFinite(defaultTimeoutMs) || defaultTimeoutMs <= 0) throw new TypeError('timeoutMs must be a positive number of ms');
  if ('timeout' in options) throw new TypeError('timeout was renamed timeoutMs in 0.2 (durations end in Ms)');

  async function attested<R extends WithRecipient>(operation: string, send: SendWithRecipient<R>, call: AttestedCall = {}): Promise<RecipientResult<R>> {
    if ('timeout' in call) throw new TypeError('timeout was renamed timeoutMs in 0.2 (durations end in Ms)');
    const deadline = clock().getTime() + (call.timeoutMs ?? defaultTimeoutMs);
    if (call.pinned) {
      let region: string | undefined;
      try {
        region = await (kms.config as { region?: () => Promise<string> } | undefined)?.region?.();
      } catch {
        region = undefined; // no region configured: the request itself will fail
      }
      checkRegion(call.pinned, region);
    }
    let t = performance.now();
    const mark = () => {
      const n = performance.now();
      const d = n - t;
      t = n;
      return d;
    };
    const taking = pool.take(bits);
    try {
      const pair: EphemeralKeyPair = await taking;
      const keyPairMs = mark();
      const document = await nsm.attestation({ publicKey: pair.spki });
      const attestationMs = mark();

      // The self-check of our own document (catches a broken NSM or clock) runs while the KMS request
      // is in flight instead of before it: it is off the critical path, and nothing KMS sends back is
      // used, or even looked at, until it has passed. A failed check cancels the request.
      const selfCheckFailed = new AbortController();
      const signal = call.signal ? AbortSignal.any([call.signal, selfCheckFailed.signal]) : selfCheckFailed.signal;
      let attempts = 0;
      const kmsCall = withRetry(
        (attemptSignal, attempt) => {
          attempts = attempt;
          return send({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: document }, attemptSignal);
        },
        options.retry ?? {},
        { operation, deadline, clock, signal, ...(call.onAttemptError ? { onAttemptError: call.onAttemptError } : {}) },
      ).then(
        (response) => ({ response }),
        (error: unknown) => ({ error }),
      );
      // allowDebug: a debug-mode enclave may still call KMS; the key policy's PCR conditions decide, as in real KMS.
      const selfCheck = startSelfCheck(() => verifier.verify(document, { publicKey: pair.spki, currentDate: clock(), clockToleranceMs: 60_000, allowDebug: true, ...(options.trustAnchors ? { trustAnchors: options.trustAnchors } : {}) }), () => deadline - clock().getTime(), selfCheckFailed);
      const outcome = await kmsCall;
      const response = 'response' in outcome ? outcome.response : undefined;
      const kmsError = 'error' in outcome ? outcome.error : undefined;
      const kmsMs = mark();
      const attestation = await selfCheck.result;
      if (attestation instanceof NitroEnclaveError) {
        if (response) zeroSecrets(response);
        throw attestation;
      }
      if ('error' in outcome) {
        if (kmsError instanceof NitroEnclaveError && kmsError.code === 'ERR_KMS_ACCESS_DENIED' && options.diagnose !== false) {
          // The diagnosis is one more round trip: it gets what is left of the caller's deadline (at most 3 s) and the caller's signal.
          const budget = AbortSignal.timeout(Math.max(0, Math.min(3000, deadline - clock().getTime())));
          const diagnosisSignal = call.signal ? AbortSignal.any([call.signal, budget]) : budget;
          throw await explainAccessDenied(kmsError, attestation, kms, `kms:${operation}`, call.pinned?.arn, diagnosisSignal);
        }
        throw kmsError;
      }
      const answer = response!;
      for (const field of ['Plaintext', 'PrivateKeyPlaintext', 'SharedSecret'] as const) {
        const leaked = answer[field];
        if (leaked && leaked.length > 0) {
          zeroSecrets(answer);
          throw new NitroEnclaveError('ERR_KMS_PROTOCOL', `KMS ${operation} returned ${field} despite Recipient; refusing it (is a proxy rewriting requests?)`);
        }
      }
      if (!answer.CiphertextForRecipient) throw new NitroEnclaveError('ERR_KMS_PROTOCOL', `KMS ${operation} returned no CiphertextForRecipient`);
      if (call.pinned && !responseMatches(call.pinned, answer.KeyId)) {
        // Checked before the envelope is opened, so no plaintext of a foreign key ever exists here.
        zeroSecrets(answer);
        throw new NitroEnclaveError('ERR_KMS_KEY_MISMATCH', `KMS ${operation} answered for key ${String(answer.KeyId ?? '(none)')}, not the pinned ${call.pinned.arn}; the released key material was zeroed unused`);
      }
      if (call.admit) {
        try {
          await call.admit({ KeyId: answer.KeyId });
        } catch (err) {
          zeroSecrets(answer);
          throw err;
        }
      }
      mark();
      const plaintext = await decryptCiphertextForRecipient(answer.CiphertextForRecipient, pair.privateKey);
      const cmsMs = mark();
      return { plaintext, response: answer, attestation, timings: { keyPairMs, attestationMs, verifyMs: selfCheck.verifyMs(), kmsMs, cmsMs, attempts } };
    } finally {
      // The key pool prepares the next pair once no call is in flight. setImmediate puts that after
      // the caller has resumed with the result: key generation must not delay the delivery it follows.
      setImmediate(() => pool.release());
    }
  }

  return {
    /** Starts generating the next key pair now, so the next call skips key generation. */
    prepare: () => pool.prepare(bits),
    attested,
    /** Decrypt with Recipient: the plaintext of `ciphertextBlob`, opened inside the enclave. `keyId`: the key ARN or alias ARN the blob must belong to. */
    async decrypt(input: { ciphertextBlob: Uint8Array; keyId: string; encryptionContext?: Record<string, string> }, call: CallOptions = {}) {
      const pinned = parsePinnedKeyArn(input?.keyId);
      return attested('Decrypt', (Recipient, abortSignal) => kms.send(new DecryptCommand({ CiphertextBlob: input.ciphertextBlob, KeyId: pinned.arn, EncryptionContext: input.encryptionContext, Recipient }), { abortSignal }), { ...call, pinned });
    },
    /** GenerateDataKey with Recipient: a new data key (plaintext here, CiphertextBlob to store in `response`). */
    async generateDataKey(input: { keyId: string; keySpec?: DataKeySpec; numberOfBytes?: number; encryptionContext?: Record<string, string> }, call: CallOptions = {}) {
      const pinned = parsePinnedKeyArn(input?.keyId);
      return attested(
        'GenerateDataKey',
        (Recipient, abortSignal) =>
          kms.send(new GenerateDataKeyCommand({ KeyId: pinned.arn, KeySpec: input.numberOfBytes ? undefined : (input.keySpec ?? 'AES_256'), NumberOfBytes: input.numberOfBytes, EncryptionContext: input.encryptionContext, Recipient }), { abortSignal }),
        { ...call, pinned },
      );
    },
    /** GenerateDataKeyPair with Recipient: the private key (PKCS#8 DER) here, the public key in `response.PublicKey`. */
    async generateDataKeyPair(input: { keyId: string; keyPairSpec: DataKeyPairSpec; encryptionContext?: Record<string, string> }, call: CallOptions = {}) {
      const pinned = parsePinnedKeyArn(input?.keyId);
      return attested('GenerateDataKeyPair', (Recipient, abortSignal) => kms.send(new GenerateDataKeyPairCommand({ KeyId: pinned.arn, KeyPairSpec: input.keyPairSpec, EncryptionContext: input.encryptionContext, Recipient }), { abortSignal }), { ...call, pinned });
    },
    /** GenerateRandom with Recipient: KMS randomness only this enclave can read (no key involved). */
    generateRandom(input: { numberOfBytes: number }, call?: CallOptions) {
      return attested('GenerateRandom', (Recipient, abortSignal) => kms.send(new GenerateRandomCommand({ NumberOfBytes: input.numberOfBytes, Recipient }), { abortSignal }), call);
    },
    /** DeriveSharedSecret with Recipient (ECDH with a KMS key agreement key). */
    async deriveSharedSecret(input: { keyId: string; publicKey: Uint8Array; keyAgreementAlgorithm?: 'ECDH' }, call: CallOptions = {}) {
      const pinned = parsePinnedKeyArn(input?.keyId);
      return attested(
        'DeriveSharedSecret',
        (Recipient, abortSignal) => kms.send(new DeriveSharedSecretCommand({ KeyId: pinned.arn, PublicKey: input.publicKey, KeyAgreementAlgorithm: input.keyAgreementAlgorithm ?? 'ECDH', Recipient }), { abortSignal }),
        { ...call, pinned },
      );
    },
  };
}

/** The client {@link createRecipientClient} returns: one method per KMS operation that takes `Recipient`. */
export type RecipientClient = ReturnType<typeof createRecipientClient>;
