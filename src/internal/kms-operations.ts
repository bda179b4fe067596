/**
 * Every operation of the KMS API, classified by what it can do to the TSK key.
 *
 * The claim "nobody but the enclave can know the TSK" is only as good as this
 * table: the key policy (`buildKeyPolicy`), `check-policy` and the enclave's
 * own key audit all derive their checks from it instead of naming operations.
 * test/internal/kms-operations.test.ts enumerates the `*Command`s of the
 * `@aws-sdk/client-kms` that ships with this package and fails when an
 * operation is missing here (a new SDK's new operation fails CI until someone
 * classifies it), and derives `takesRecipient` / `takesDryRun` from the SDK's
 * own request types, not from this file. `docs/security.md` shows the table
 * (`npm run docs:security`).
 *
 * It lives in `internal/` so the parent side (policy) and the enclave side
 * (key audit) both import it without importing each other. Data only: it does
 * not load the AWS SDK.
 */

/**
 * What an operation can do to a key's secrets.
 * - `plaintext` (a): can return plaintext of the key's ciphertexts, or move it
 *   to a key the caller controls (ReEncrypt).
 * - `ciphertext` (b): produces a ciphertext under the key whose plaintext the
 *   caller chose or receives (Encrypt, GenerateDataKey, ...): a TSK blob of a
 *   key the caller knows.
 * - `authority` (c): hands authority or key material elsewhere (grants,
 *   replication, import, alias re-pointing, policy, custom key stores, tags).
 * - `none` (d): nothing secret.
 */
export type KmsOperationClass = 'plaintext' | 'ciphertext' | 'authority' | 'none';

/** One operation of the KMS API model and what it can do to the TSK key. */
export interface KmsOperationInfo {
  /** The API operation, as the SDK's command is named without `Command` (`Decrypt`). */
  readonly operation: string;
  /** The IAM action that authorizes it on the key (`kms:Decrypt`). */
  readonly action: string;
  /**
   * Every IAM action that authorizes it on a key, `action` first. Differs from
   * `[action]` only for ReEncrypt (`kms:ReEncryptFrom` on the source key,
   * `kms:ReEncryptTo` on the destination key).
   */
  readonly actions: readonly string[];
  readonly class: KmsOperationClass;
  /** The request takes `Recipient` (an attestation document), so `kms:RecipientAttestation:*` conditions can apply. */
  readonly takesRecipient: boolean;
  /** The request takes `DryRun`, so `check-policy` can probe it without effect. */
  readonly takesDryRun: boolean;
  /** Why it is in its class, in one or two sentences. */
  readonly why: string;
}

type Row = readonly [operation: string, cls: KmsOperationClass, recipient: boolean, dryRun: boolean, why: string, actions?: readonly string[]];

const P = 'plaintext';
const C = 'ciphertext';
const A = 'authority';
const N = 'none';

// Alphabetical, as the SDK lists its commands. Recipient / DryRun columns must match the SDK's
// request types (the test checks them against node_modules/@aws-sdk/client-kms).
const ROWS: readonly Row[] = [
  ['CancelKeyDeletion', N, false, false, 'Takes a key out of PendingDeletion; changes availability, reveals nothing.'],
  ['ConnectCustomKeyStore', A, false, false, 'Custom key stores hold key material outside AWS KMS (CloudHSM, external key manager): whoever runs the store holds the material. IAM-only (no key resource).'],
  ['CreateAlias', A, false, false, 'Points a new alias at a key. An enclave that pins an alias ARN trusts whatever the alias names, so aliases are authority over which key it uses.'],
  ['CreateCustomKeyStore', A, false, false, 'Creates a store whose key material lives outside AWS KMS. IAM-only (no key resource).'],
  ['CreateGrant', A, false, true, 'Delegates operations on the key to another principal without a policy change. A key policy Deny still applies to grantees, so it cannot reopen a denied path.'],
  ['CreateKey', N, false, false, 'Creates a different key with its own policy; it never acts on an existing key. A pinned key ARN (and the enclave\'s key audit) keeps other keys out.'],
  ['Decapsulate', P, false, true, 'Returns the shared secret of an ML-KEM ciphertext: plaintext of the key\'s ciphertexts. Takes no Recipient.'],
  ['Decrypt', P, true, true, 'Returns the plaintext of a ciphertext, or with Recipient only to the attested enclave (CiphertextForRecipient). How the TSK is opened.'],
  ['DeleteAlias', A, false, false, 'Frees an alias name so it can be re-created pointing at another key: re-points an alias ARN an enclave may pin.'],
  ['DeleteCustomKeyStore', A, false, false, 'Custom key store lifecycle. IAM-only (no key resource).'],
  ['DeleteImportedKeyMaterial', A, false, false, 'Import lifecycle of an EXTERNAL-origin key: deleting and re-importing material is how an importer controls what the key holds.'],
  ['DeriveSharedSecret', P, true, true, 'Returns an ECDH shared secret computed with the key\'s private key: secret key material, or with Recipient only to the attested enclave.'],
  ['DescribeCustomKeyStores', N, false, false, 'Metadata of custom key stores.'],
  ['DescribeKey', N, false, false, 'Key metadata (origin, spec, state, multi-Region). The enclave\'s key audit reads it.'],
  ['DisableKey', N, false, false, 'Changes availability, reveals nothing.'],
  ['DisableKeyRotation', N, false, false, 'Rotation schedule; old material stays, reveals nothing.'],
  ['DisconnectCustomKeyStore', A, false, false, 'Custom key store lifecycle. IAM-only (no key resource).'],
  ['EnableKey', N, false, false, 'Changes availability, reveals nothing.'],
  ['EnableKeyRotation', N, false, false, 'KMS makes new material inside KMS; reveals nothing.'],
  ['Encapsulate', C, false, true, 'Returns a fresh shared secret and its ML-KEM ciphertext: the caller receives the plaintext of a ciphertext under the key.'],
  ['Encrypt', C, false, true, 'Encrypts plaintext the caller chose: a TSK blob of a key the caller knows. KMS cannot tell it from a provisioned blob.'],
  ['GenerateDataKey', C, true, true, 'Returns a data key with its ciphertext; without Recipient the caller receives the plaintext (with Recipient only the attested enclave does).'],
  ['GenerateDataKeyPair', C, true, true, 'Returns a key pair with the private key encrypted under the key; without Recipient the caller receives the private key in clear.'],
  ['GenerateDataKeyPairWithoutPlaintext', C, false, true, 'Returns an encrypted private key and its public key: the caller learns the public half of the plaintext. No use on a TSK key, and no Recipient, so it counts as minting.'],
  ['GenerateDataKeyWithoutPlaintext', N, false, true, 'Blind provisioning: a random data key only as ciphertext, whose plaintext nobody outside KMS sees. How the TSK blob is made.'],
  ['GenerateMac', N, false, true, 'HMAC keys only: a MAC of the caller\'s message, no key material and no ciphertext\'s plaintext.'],
  ['GenerateRandom', N, true, false, 'Random bytes, not tied to a key (Recipient only hides them from the caller).'],
  ['GetKeyLastUsage', N, false, false, 'When and by which operation the key was last used.'],
  ['GetKeyPolicy', N, false, false, 'Reads the key policy. The enclave\'s key audit reads it.'],
  ['GetKeyRotationStatus', N, false, false, 'Rotation status.'],
  ['GetParametersForImport', A, false, false, 'First step of importing key material into an EXTERNAL-origin key: the wrapping public key and import token.'],
  ['GetPublicKey', N, false, false, 'The public half of an asymmetric key: public by definition.'],
  ['ImportKeyMaterial', A, false, false, 'Sets the key material of an EXTERNAL-origin key to bytes the importer chose: the importer can decrypt every blob offline.'],
  ['ListAliases', N, false, false, 'Alias names and their target key ids.'],
  ['ListGrants', N, false, false, 'The key\'s grants. The enclave\'s key audit reads them.'],
  ['ListKeyPolicies', N, false, false, 'Policy names (always "default").'],
  ['ListKeyRotations', N, false, false, 'Dates and ids of past rotations.'],
  ['ListKeys', N, false, false, 'Key ids of the account and Region.'],
  ['ListResourceTags', N, false, false, 'The key\'s tags.'],
  ['ListRetirableGrants', N, false, false, 'Grants a principal may retire.'],
  ['PutKeyPolicy', A, false, false, 'Replaces the key policy: full authority. Never denied by our policies (lockout safety); its use is visible in CloudTrail.'],
  ['ReEncrypt', P, false, true, 'Decrypts under the source key and encrypts under the destination: moves the TSK to a key the caller controls (ReEncryptFrom), or a known key onto the TSK key (ReEncryptTo). Takes no Recipient.', ['kms:ReEncryptFrom', 'kms:ReEncryptTo']],
  ['ReplicateKey', A, false, false, 'Copies a multi-Region key\'s material into another Region, where the replica has its own key policy and decrypts the primary\'s blobs.'],
  ['RetireGrant', N, false, true, 'Removes a grant: reduces authority, reveals nothing.'],
  ['RevokeGrant', N, false, true, 'Removes a grant: reduces authority, reveals nothing.'],
  ['RotateKeyOnDemand', N, false, false, 'KMS makes new material inside KMS (or switches to material already imported); old blobs still open. Reveals nothing.'],
  ['ScheduleKeyDeletion', N, false, false, 'Destroys the key after a waiting period: availability, not secrecy.'],
  ['Sign', N, false, true, 'Signing keys only: a signature over the caller\'s message, no key material.'],
  ['TagResource', A, false, false, 'Tags can grant authority: IAM policies with aws:ResourceTag conditions (ABAC) follow them. Only an Allow can follow a tag; the key policy\'s Deny does not.'],
  ['UntagResource', A, false, false, 'Removing a tag changes what tag-conditioned IAM policies (ABAC) grant.'],
  ['UpdateAlias', A, false, false, 'Re-points an alias to another key: an enclave pinning the alias ARN would follow it to a key whose blobs the caller minted.'],
  ['UpdateCustomKeyStore', A, false, false, 'Changes where a custom key store\'s material lives. IAM-only (no key resource).'],
  ['UpdateKeyDescription', N, false, false, 'Description text.'],
  ['UpdatePrimaryRegion', A, false, false, 'Makes a replica in another Region the primary: the key\'s authority moves under that Region\'s key policy.'],
  ['Verify', N, false, true, 'Checks a signature; reveals nothing.'],
  ['VerifyMac', N, false, true, 'Checks a MAC; reveals nothing.'],
];

/**
 * Every operation of the KMS API model, classified (alphabetical).
 *
 * @example
 * ```ts
 * const minting = KMS_OPERATIONS.filter((o) => o.class === 'plaintext' || o.class === 'ciphertext');
 * minting.filter((o) => !o.takesRecipient).map((o) => o.action); // denied outright by buildKeyPolicy
 * ```
 */
export const KMS_OPERATIONS: readonly KmsOperationInfo[] = Object.freeze(
  ROWS.map(([operation, cls, takesRecipient, takesDryRun, why, actions]) => {
    const all = Object.freeze([...(actions ?? [`kms:${operation}`])]);
    return Object.freeze({ operation, action: all[0]!, actions: all, class: cls, takesRecipient, takesDryRun, why });
  }),
);

const BY_NAME = new Map(KMS_OPERATIONS.map((o) => [o.operation, o]));

/**
 * Looks up an operation by its API name (`Decrypt`, case-sensitive as KMS
 * spells it). `undefined` for a name the model does not have.
 *
 * @example
 * ```ts
 * kmsOperation('Encrypt')?.class; // 'ciphertext'
 * kmsOperation('ReEncrypt')?.actions; // ['kms:ReEncryptFrom', 'kms:ReEncryptTo']
 * ```
 */
export function kmsOperation(name: string): KmsOperationInfo | undefined {
  return BY_NAME.get(name);
}
