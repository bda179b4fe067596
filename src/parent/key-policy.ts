import type { PolicyDocument, PolicyStatement } from '../internal/iam-policy.js';
import { KMS_OPERATIONS, type KmsOperationInfo } from '../internal/kms-operations.js';

/**
 * One enclave image the key is released to: its PCR0 (optionally with PCR1
 * and PCR2), or its PCR8 (the signing certificate, so every EIF signed with
 * that certificate is admitted), as 96 hex characters each. Every PCR given
 * must match.
 */
export interface EnclaveImage {
  /** The image hash (`kms:RecipientAttestation:ImageSha384`). */
  pcr0?: string;
  /** The kernel and boot ramdisk; only together with `pcr0`. */
  pcr1?: string;
  /** The application; only together with `pcr0`. */
  pcr2?: string;
  /** The signing certificate's hash (`nitro-enclave pcr8 --cert`). */
  pcr8?: string;
}

/** Options of {@link buildKeyPolicy}. */
export interface KeyPolicyOptions {
  /** 12-digit AWS account id. */
  accountId: string;
  /** The role the enclave's parent instance runs as: a role name or a full role ARN. */
  enclaveRole: string;
  /** Key administrators: user/role names (`user/admin`) or ARNs. Default `user/admin`, as in the seed. */
  admins?: string[];
  /**
   * PCR0 (the enclave image hash, SHA-384 hex) of one admitted image; with
   * `pcrs`, that image's further PCRs. Either this or `images` (or both: then
   * this is one more image).
   */
  pcr0?: string;
  /** Extra PCR conditions of the `pcr0` image (index → hex). */
  pcrs?: Record<number, string>;
  /**
   * The admitted images: an attestation matching any one of them passes, every
   * other request to an attestation-gated operation is denied.
   */
  images?: EnclaveImage[];
  /**
   * Actions the enclave may perform with attestation. Default `["kms:Decrypt"]`.
   * Only actions that take a `Recipient` (see {@link RECIPIENT_ACTIONS}), spelled
   * out: no wildcards (`kms:GenerateDataKey*` would also match
   * GenerateDataKeyWithoutPlaintext, which the operator needs unattested).
   */
  enclaveActions?: string[];
  /**
   * Add the explicit Deny statements for every principal (see
   * {@link keyPolicyTreatment}): the Recipient operations of classes (a)/(b)
   * unless the attestation matches an admitted image, the other (a)/(b)
   * operations outright, and replication, import and alias re-pointing.
   * Default `true`: the seed's root statement delegates to IAM, so without them
   * any identity policy granting kms:Encrypt, kms:Decrypt or kms:* reaches or
   * mints the TSK unattested.
   */
  denyUnattested?: boolean;
  /** Allow an all-zero PCR0 or PCR8 (debug-mode enclave). Default `false`. */
  allowDebugPcr0?: boolean;
}

const HEX384 = /^[0-9a-fA-F]{96}$/;

/**
 * The KMS actions that accept a `Recipient` (an attestation document), and
 * so the only ones a `kms:RecipientAttestation:*` condition can ever match.
 *
 * @example
 * ```ts
 * buildKeyPolicy({ accountId, enclaveRole, pcr0, enclaveActions: ['kms:Decrypt', 'kms:GenerateDataKey'] });
 * RECIPIENT_ACTIONS.includes('kms:Decrypt'); // true
 * ```
 */
export const RECIPIENT_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyPair', 'kms:GenerateRandom', 'kms:DeriveSharedSecret'] as const;

function enclaveActionsOf(value: unknown): string[] {
  if (value === undefined) return ['kms:Decrypt'];
  if (!Array.isArray(value) || value.length === 0) throw new TypeError('enclaveActions must be a non-empty array of KMS action names');
  const out: string[] = [];
  for (const action of value) {
    if (typeof action !== 'string' || /[*?]/.test(action)) throw new TypeError(`enclaveActions: "${String(action)}" is not allowed: name each action exactly, no wildcards (kms:GenerateDataKey* would also match kms:GenerateDataKeyWithoutPlaintext)`);
    // IAM action names are case-insensitive; the policy spells them canonically.
    const canonical = RECIPIENT_ACTIONS.find((a) => a.toLowerCase() === action.toLowerCase());
    if (!canonical) throw new TypeError(`enclaveActions: ${action} does not take a Recipient, so no attestation condition can ever apply to it; allowed: ${RECIPIENT_ACTIONS.join(', ')}`);
    if (!out.includes(canonical)) out.push(canonical);
  }
  return out;
}

function principalArn(accountId: string, name: string, kind: 'role' | 'user'): string {
  if (name.startsWith('arn:')) return name;
  if (name.startsWith('role/') || name.startsWith('user/')) return `arn:aws:iam::${accountId}:${name}`;
  return `arn:aws:iam::${accountId}:${kind}/${name}`;
}

/** How the key policy from {@link buildKeyPolicy} treats an operation on the TSK key, for every principal. */
export type KeyPolicyTreatment = 'attested' | 'denied' | 'open';

/**
 * Authority (c) operations the policy denies outright, and the ones it leaves
 * to the administrators, with why. An authority operation missing here is
 * denied (fails closed) until someone decides about it; the test checks every
 * one of the model's is here.
 */
export const AUTHORITY_DECISIONS: Readonly<Record<string, { readonly denied: boolean; readonly why: string }>> = Object.freeze({
  ReplicateKey: { denied: true, why: 'a replica in another Region decrypts the blobs under its own key policy' },
  UpdatePrimaryRegion: { denied: true, why: 'moves the key\'s primary, and with it the authority, to another Region\'s policy' },
  GetParametersForImport: { denied: true, why: 'import is for EXTERNAL-origin keys, whose importer knows the material; the TSK key is AWS_KMS' },
  ImportKeyMaterial: { denied: true, why: 'the importer chose the material and can decrypt every blob offline' },
  DeleteImportedKeyMaterial: { denied: true, why: 'with re-import, how an importer swaps the material' },
  UpdateAlias: { denied: true, why: 'KMS requires it on the alias\'s current key: denying it on the TSK key keeps an alias ARN the enclave pins from moving to a key whose blobs someone minted' },
  DeleteAlias: { denied: true, why: 'deleting and re-creating the alias would re-point it just as UpdateAlias does' },
  CreateAlias: { denied: false, why: 'only adds a name for the TSK key (setup needs it); it cannot move an existing alias' },
  CreateGrant: { denied: false, why: 'a key policy Deny applies to grantees too, so a grant opens nothing the Deny statements close' },
  PutKeyPolicy: { denied: false, why: 'never denied: KMS\'s lockout check requires it, and the key must stay manageable (visible in CloudTrail)' },
  TagResource: { denied: false, why: 'a tag can only make an IAM Allow apply (ABAC); the key policy\'s Deny statements do not look at tags' },
  UntagResource: { denied: false, why: 'as TagResource' },
  ConnectCustomKeyStore: { denied: false, why: 'IAM-only, no key resource: a key policy cannot name it; the TSK key is not in a custom key store (Origin AWS_KMS)' },
  CreateCustomKeyStore: { denied: false, why: 'IAM-only, no key resource' },
  DeleteCustomKeyStore: { denied: false, why: 'IAM-only, no key resource' },
  DisconnectCustomKeyStore: { denied: false, why: 'IAM-only, no key resource' },
  UpdateCustomKeyStore: { denied: false, why: 'IAM-only, no key resource' },
});

/**
 * How the hardened policy treats an operation, derived from its class:
 * `attested` — (a)/(b) operations that take `Recipient`, denied unless the
 * attestation matches an admitted image; `denied` — (a)/(b) operations that
 * cannot take `Recipient` (no attestation condition can ever match them), and
 * the authority operations {@link AUTHORITY_DECISIONS} denies; `open` —
 * everything else (left to the key policy's Allow statements and IAM).
 *
 * @example
 * ```ts
 * keyPolicyTreatment(kmsOperation('Encrypt')!); // 'denied'
 * keyPolicyTreatment(kmsOperation('Decrypt')!); // 'attested'
 * keyPolicyTreatment(kmsOperation('GenerateDataKeyWithoutPlaintext')!); // 'open'
 * ```
 */
export function keyPolicyTreatment(op: KmsOperationInfo): KeyPolicyTreatment {
  switch (op.class) {
    case 'plaintext':
    case 'ciphertext':
      return op.takesRecipient ? 'attested' : 'denied';
    case 'authority':
      return AUTHORITY_DECISIONS[op.operation]?.denied === false ? 'open' : 'denied';
    case 'none':
      return 'open';
  }
}

const actionsTreated = (treatment: KeyPolicyTreatment) => KMS_OPERATIONS.filter((o) => keyPolicyTreatment(o) === treatment).flatMap((o) => o.actions);

const CONDITION_KEY: Record<keyof EnclaveImage, string> = {
  pcr0: 'kms:RecipientAttestation:ImageSha384',
  pcr1: 'kms:RecipientAttestation:PCR1',
  pcr2: 'kms:RecipientAttestation:PCR2',
  pcr8: 'kms:RecipientAttestation:PCR8',
};

/** One image as its condition keys (lower-case hex values), validated. */
type ImageConditions = Record<string, string>;

function checkedHex(value: unknown, what: string): string {
  if (typeof value !== 'string' || !HEX384.test(value)) throw new TypeError(`${what} must be 96 hex characters (SHA-384), as nitro-cli prints it`);
  return value.toLowerCase();
}

function imageConditions(image: EnclaveImage, index: number, allowDebug: boolean): ImageConditions {
  if (!image || typeof image !== 'object') throw new TypeError(`images[${index}] must be an object with pcr0 or pcr8`);
  const unknown = Object.keys(image).filter((k) => !(k in CONDITION_KEY));
  if (unknown.length) throw new TypeError(`images[${index}]: unknown field ${unknown.join(', ')}; an image is pcr0 (with optional pcr1, pcr2) or pcr8`);
  if (image.pcr0 === undefined && image.pcr8 === undefined) throw new TypeError(`images[${index}] needs pcr0 or pcr8: PCR1/PCR2 alone do not identify the application`);
  if (image.pcr0 === undefined && (image.pcr1 !== undefined || image.pcr2 !== undefined)) throw new TypeError(`images[${index}]: pcr1 and pcr2 only together with pcr0`);
  const out: ImageConditions = {};
  for (const field of ['pcr0', 'pcr1', 'pcr2', 'pcr8'] as const) {
    if (image[field] === undefined) continue;
    out[CONDITION_KEY[field]] = checkedHex(image[field], index === -1 ? field : `images[${index}].${field}`);
  }
  const zero = (v: string | undefined) => v !== undefined && /^0+$/.test(v);
  if (zero(out[CONDITION_KEY.pcr0]) && !allowDebug) {
    throw new TypeError('pcr0 is all zeros: that is what a debug-mode enclave reports, so this policy would release the key to any debug-mode enclave. Use the PCR0 from nitro-cli build-enclave, or set allowDebugPcr0 for a throwaway test key.');
  }
  if (zero(out[CONDITION_KEY.pcr8]) && !allowDebug) {
    throw new TypeError('pcr8 is all zeros: that is what an enclave with no signing certificate (and any debug-mode enclave) reports, so this policy would admit them. Use the PCR8 from nitro-enclave pcr8 --cert, or set allowDebugPcr0 for a throwaway test key.');
  }
  return out;
}

/** The admitted images: `pcr0` (+ `pcrs`) first, then `images`, duplicates removed. */
function admittedImages(options: KeyPolicyOptions): ImageConditions[] {
  const allowDebug = Boolean(options.allowDebugPcr0);
  const images: ImageConditions[] = [];
  if (options.pcr0 !== undefined) {
    const first = imageConditions({ pcr0: options.pcr0 }, -1, allowDebug);
    for (const [index, value] of Object.entries(options.pcrs ?? {})) {
      const i = Number(index);
      if (!Number.isInteger(i) || i < 0 || i > 31) throw new TypeError(`pcrs: ${index} is not a PCR index 0..31`);
      const hex = checkedHex(value, `pcrs[${index}]`);
      if (i === 0) {
        if (hex !== first[CONDITION_KEY.pcr0]) throw new TypeError('pcrs[0] differs from pcr0');
        continue;
      }
      if (i === 8 && /^0+$/.test(hex) && !allowDebug) imageConditions({ pcr8: hex }, -1, false);
      first[`kms:RecipientAttestation:PCR${i}`] = hex;
    }
    images.push(first);
  } else if (options.pcrs !== undefined) throw new TypeError('pcrs belongs to pcr0; give pcr0, or use images');
  if (options.images !== undefined) {
    if (!Array.isArray(options.images)) throw new TypeError('images must be an array of { pcr0 } / { pcr8 } objects');
    options.images.forEach((image, i) => images.push(imageConditions(image, i, allowDebug)));
  }
  if (images.length === 0) throw new TypeError('pcr0 must be 96 hex characters (SHA-384), as nitro-cli prints it; or give images');
  const seen = new Set<string>();
  return images.filter((image) => {
    const id = JSON.stringify(Object.entries(image).sort());
    return seen.has(id) ? false : (seen.add(id), true);
  });
}

/** At most this many Deny statements from the expansion below; KMS caps a key policy at 32 KB anyway. */
const MAX_DENY_STATEMENTS = 32;
const MAX_POLICY_BYTES = 32 * 1024;

/**
 * "Not (image A or image B or …)" as a set of Deny statements. An image is an
 * AND of (key = value) literals, so its negation is an OR of (key ≠ value); the
 * AND over images of those ORs is, multiplied out, an OR of ANDs: one
 * statement (Deny statements are ORed) per choice of one literal from each
 * image, its keys ANDed within the statement. Literals on the same key merge
 * into one negated operator with a list (it matches when the key equals none
 * of the values, and when the key is absent). A choice that contains another
 * choice's literals is implied by it and dropped.
 */
export function denyConditionSets(images: readonly ImageConditions[]): Array<Record<string, string[]>> {
  let products: Array<Map<string, Set<string>>> = [new Map()];
  for (const image of images) {
    const next: Array<Map<string, Set<string>>> = [];
    for (const partial of products) {
      for (const [key, value] of Object.entries(image)) {
        const m = new Map([...partial].map(([k, v]) => [k, new Set(v)]));
        m.set(key, (m.get(key) ?? new Set()).add(value));
        next.push(m);
      }
    }
    products = minimal(next);
    if (products.length > MAX_DENY_STATEMENTS) {
      throw new TypeError(`these images need more than ${MAX_DENY_STATEMENTS} Deny statements (one per choice of one PCR from each image): admit fewer images, or give images as PCR0 or PCR8 alone`);
    }
  }
  return products.map((m) => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v].sort()])));
}

/** Drops duplicates and every literal set that contains another one (it denies a subset of what that one denies). */
function minimal(sets: Array<Map<string, Set<string>>>): Array<Map<string, Set<string>>> {
  const covers = (small: Map<string, Set<string>>, big: Map<string, Set<string>>) => [...small].every(([k, vs]) => [...vs].every((v) => big.get(k)?.has(v)));
  const out: Array<Map<string, Set<string>>> = [];
  sets.forEach((s, i) => {
    const redundant = sets.some((t, j) => j !== i && covers(t, s) && (!covers(s, t) || j < i));
    if (!redundant) out.push(s);
  });
  return out;
}

const one = (values: string[]) => (values.length === 1 ? values[0]! : values);

/**
 * Builds the key policy of the seed's shape (root account, enclave role with
 * `kms:RecipientAttestation:*` conditions, key administrators), for one or
 * several admitted images, hardened by default with explicit Deny statements
 * for every principal derived from the classification of every KMS operation
 * (`KMS_OPERATIONS`, see {@link keyPolicyTreatment}): the Recipient operations
 * that read or mint key material unless the attestation matches an admitted
 * image; the other such operations (Encrypt, ReEncrypt, …) outright; and
 * replication, import and alias re-pointing. It never denies
 * `kms:PutKeyPolicy` or `kms:GenerateDataKeyWithoutPlaintext`. The enclave
 * role may also call `kms:DescribeKey`, `kms:GetKeyPolicy` and `kms:ListGrants`
 * (the enclave's audit of its key).
 *
 * Throws `TypeError` on an invalid measurement, and on an all-zero PCR0 or
 * PCR8 unless `allowDebugPcr0`: a debug-mode enclave reports all-zero PCRs, so
 * such a policy would release the key to *any* enclave started in debug mode.
 *
 * @example
 * ```ts
 * const policy = buildKeyPolicy({ accountId: '111122223333', enclaveRole: 'EnclaveInstanceRole', pcr0 });
 * // During a rollout: the old image, the new one, and every EIF signed with the release certificate.
 * buildKeyPolicy({ accountId, enclaveRole, images: [{ pcr0: oldPcr0 }, { pcr0: newPcr0, pcr1, pcr2 }, { pcr8 }] });
 * await kms.send(new PutKeyPolicyCommand({ KeyId, PolicyName: 'default', Policy: JSON.stringify(policy) }));
 * ```
 */
export function buildKeyPolicy(options: KeyPolicyOptions): PolicyDocument {
  const { accountId, enclaveRole } = options;
  if (!/^\d{12}$/.test(accountId ?? '')) throw new TypeError('accountId must be a 12-digit AWS account id');
  if (typeof enclaveRole !== 'string' || enclaveRole.length === 0) throw new TypeError('enclaveRole is required');
  const images = admittedImages(options);
  const actions = enclaveActionsOf(options.enclaveActions);
  const role = principalArn(accountId, enclaveRole, 'role');
  const admins = (options.admins ?? ['user/admin']).map((a) => principalArn(accountId, a, 'user'));
  const statements: PolicyStatement[] = [
    { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' },
    ...images.map(
      (conditions, i): PolicyStatement => ({
        Sid: images.length === 1 ? 'Allow Enclave Decrypt' : `Allow Enclave Decrypt Image ${i + 1}`,
        Effect: 'Allow',
        Principal: { AWS: role },
        Action: one(actions),
        Resource: '*',
        Condition: { StringEqualsIgnoreCase: conditions },
      }),
    ),
    // The enclave's own audit of its key (DescribeKey, GetKeyPolicy, ListGrants) runs before it trusts what KMS
    // releases; none of these takes a Recipient, so no attestation condition can apply, and none reveals a secret.
    { Sid: 'Allow Enclave Key Audit', Effect: 'Allow', Principal: { AWS: role }, Action: ['kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:ListGrants'], Resource: '*' },
    {
      Sid: 'Allow Key Administrators',
      Effect: 'Allow',
      Principal: { AWS: admins.length === 1 ? admins[0]! : admins },
      Action: ['kms:Create*', 'kms:Describe*', 'kms:Enable*', 'kms:List*', 'kms:Put*', 'kms:Update*', 'kms:Revoke*', 'kms:Disable*', 'kms:Get*', 'kms:Delete*', 'kms:TagResource', 'kms:UntagResource', 'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion'],
      Resource: '*',
    },
  ];
  if (options.denyUnattested ?? true) {
    // Every (a)/(b) operation that takes a Recipient, plus whatever else the enclave may do with attestation.
    const gated = [...new Set([...actionsTreated('attested'), ...actions])];
    // Deny statements apply to every principal, so the root statement's delegation to IAM, grants
    // (KMS evaluates the key policy's Deny first) and a kms:* administrator cannot reopen them.
    denyConditionSets(images).forEach((conditions, i, all) => {
      statements.push({
        Sid: all.length === 1 ? 'Deny Without Admitted Attestation' : `Deny Without Admitted Attestation ${i + 1}`,
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: gated,
        Resource: '*',
        Condition: { StringNotEqualsIgnoreCase: Object.fromEntries(Object.entries(conditions).map(([k, v]) => [k, one(v)])) },
      });
    });
    // The same for a request with no attestation document at all, stated without relying on how
    // negated operators treat absent keys: Null "true" matches exactly when the key is missing.
    statements.push({ Sid: 'Deny Without Any Attestation', Effect: 'Deny', Principal: { AWS: '*' }, Action: gated, Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } });
    // (a)/(b) operations without a Recipient (Encrypt, ReEncryptFrom/To, Encapsulate, Decapsulate,
    // GenerateDataKeyPairWithoutPlaintext, ...): kms:RecipientAttestation:* is never in their request
    // context, so no attestation condition could ever let them through; each would let its caller
    // read the TSK or mint a blob of a key it knows. Named exactly (no wildcards), so
    // kms:GenerateDataKeyWithoutPlaintext (provisioning) stays open.
    statements.push({ Sid: 'Deny Reading Or Minting Key Material', Effect: 'Deny', Principal: { AWS: '*' }, Action: actionsTreated('denied').filter((a) => KMS_OPERATIONS.some((o) => o.class !== 'authority' && o.actions.includes(a))), Resource: '*' });
    // Authority operations that would move the key's material or the alias the enclave pins out of this policy's reach.
    statements.push({ Sid: 'Deny Moving Key Material Or Alias', Effect: 'Deny', Principal: { AWS: '*' }, Action: actionsTreated('denied').filter((a) => KMS_OPERATIONS.some((o) => o.class === 'authority' && o.actions.includes(a))), Resource: '*' });
  }
  const policy: PolicyDocument = { Version: '2012-10-17', Id: 'confidential-workflow-key-policy', Statement: statements };
  const bytes = JSON.stringify(policy).length;
  if (bytes > MAX_POLICY_BYTES) throw new TypeError(`the policy is ${bytes} bytes; KMS accepts at most ${MAX_POLICY_BYTES}: admit fewer images`);
  return policy;
}
