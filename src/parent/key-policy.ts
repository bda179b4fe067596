import type { PolicyDocument, PolicyStatement } from '../internal/iam-policy.js';

/** Options of {@link buildKeyPolicy}. */
export interface KeyPolicyOptions {
  /** 12-digit AWS account id. */
  accountId: string;
  /** The role the enclave's parent instance runs as: a role name or a full role ARN. */
  enclaveRole: string;
  /** Key administrators: user/role names (`user/admin`) or ARNs. Default `user/admin`, as in the seed. */
  admins?: string[];
  /** PCR0 (the enclave image hash, SHA-384 hex). */
  pcr0: string;
  /** Extra PCR conditions (e.g. PCR8 for the signing certificate). */
  pcrs?: Record<number, string>;
  /**
   * Actions the enclave may perform with attestation. Default `["kms:Decrypt"]`.
   * Only actions that take a `Recipient` (see {@link RECIPIENT_ACTIONS}), spelled
   * out: no wildcards (`kms:GenerateDataKey*` would also match
   * GenerateDataKeyWithoutPlaintext, which the operator needs unattested).
   */
  enclaveActions?: string[];
  /**
   * Add explicit Deny statements for every principal: `kms:Decrypt` and the
   * enclave actions without a matching attestation, and `kms:ReEncrypt*`
   * always. Default `true`: the seed's root statement delegates to IAM, so
   * without them any identity policy granting kms:Decrypt or kms:ReEncrypt*
   * (the seed's step 4, or an administrator's kms:*) reaches the TSK
   * unattested.
   */
  denyUnattested?: boolean;
  /** Allow an all-zero PCR0 (debug-mode enclave). Default `false`. */
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

/**
 * Builds the key policy of the seed's shape (root account, enclave role with
 * `kms:RecipientAttestation:ImageSha384`, key administrators), hardened by
 * default with explicit Deny statements for every principal: Decrypt (and the
 * enclave actions) without a matching attestation, and ReEncrypt always. Throws `TypeError` on an
 * invalid measurement, and on an all-zero PCR0 unless `allowDebugPcr0`:
 * a debug-mode enclave reports all-zero PCRs, so such a policy would release
 * the key to *any* enclave started in debug mode.
 *
 * @example
 * ```ts
 * const policy = buildKeyPolicy({ accountId: '111122223333', enclaveRole: 'EnclaveInstanceRole', pcr0 });
 * await kms.send(new PutKeyPolicyCommand({ KeyId, PolicyName: 'default', Policy: JSON.stringify(policy) }));
 * ```
 */
export function buildKeyPolicy(options: KeyPolicyOptions): PolicyDocument {
  const { accountId, enclaveRole, pcr0 } = options;
  if (!/^\d{12}$/.test(accountId ?? '')) throw new TypeError('accountId must be a 12-digit AWS account id');
  if (typeof enclaveRole !== 'string' || enclaveRole.length === 0) throw new TypeError('enclaveRole is required');
  if (typeof pcr0 !== 'string' || !HEX384.test(pcr0)) throw new TypeError('pcr0 must be 96 hex characters (SHA-384), as nitro-cli prints it');
  if (/^0+$/.test(pcr0) && !options.allowDebugPcr0) {
    throw new TypeError('pcr0 is all zeros: that is what a debug-mode enclave reports, so this policy would release the key to any debug-mode enclave. Use the PCR0 from nitro-cli build-enclave, or set allowDebugPcr0 for a throwaway test key.');
  }
  const conditions: Record<string, string> = { 'kms:RecipientAttestation:ImageSha384': pcr0.toLowerCase() };
  for (const [index, value] of Object.entries(options.pcrs ?? {})) {
    const i = Number(index);
    if (!Number.isInteger(i) || i < 0 || i > 31) throw new TypeError(`pcrs: ${index} is not a PCR index 0..31`);
    if (!HEX384.test(value)) throw new TypeError(`pcrs[${index}] must be 96 hex characters`);
    conditions[`kms:RecipientAttestation:PCR${i}`] = value.toLowerCase();
  }
  const actions = enclaveActionsOf(options.enclaveActions);
  const role = principalArn(accountId, enclaveRole, 'role');
  const admins = (options.admins ?? ['user/admin']).map((a) => principalArn(accountId, a, 'user'));
  const statements: PolicyStatement[] = [
    { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' },
    { Sid: 'Allow Enclave Decrypt', Effect: 'Allow', Principal: { AWS: role }, Action: actions.length === 1 ? actions[0]! : actions, Resource: '*', Condition: { StringEqualsIgnoreCase: conditions } },
    {
      Sid: 'Allow Key Administrators',
      Effect: 'Allow',
      Principal: { AWS: admins.length === 1 ? admins[0]! : admins },
      Action: ['kms:Create*', 'kms:Describe*', 'kms:Enable*', 'kms:List*', 'kms:Put*', 'kms:Update*', 'kms:Revoke*', 'kms:Disable*', 'kms:Get*', 'kms:Delete*', 'kms:TagResource', 'kms:UntagResource', 'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion'],
      Resource: '*',
    },
  ];
  if (options.denyUnattested ?? true) {
    // Decrypt is always covered, whatever the enclave may do: it is how the TSK blob is opened.
    const denied = ['kms:Decrypt', ...actions.filter((a) => a !== 'kms:Decrypt')];
    const deniedAction = denied.length === 1 ? denied[0]! : denied;
    // One Deny per condition key: keys inside one operator block are ANDed, and a
    // negated operator matches when its key differs *or* is absent (no attestation).
    for (const [key, value] of Object.entries(conditions)) {
      const name = key.slice('kms:RecipientAttestation:'.length);
      statements.push({
        Sid: name === 'ImageSha384' ? 'Deny Decrypt Without Enclave Attestation' : `Deny Decrypt Without Matching ${name}`,
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: deniedAction,
        Resource: '*',
        Condition: { StringNotEqualsIgnoreCase: { [key]: value } },
      });
    }
    // The same for a request with no attestation document at all, stated without relying on how
    // negated operators treat absent keys: Null "true" matches exactly when the key is missing.
    statements.push({ Sid: 'Deny Decrypt Without Any Attestation', Effect: 'Deny', Principal: { AWS: '*' }, Action: deniedAction, Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } });
    // ReEncrypt takes no Recipient, so kms:RecipientAttestation:* is never present in its request
    // context (KMS documents those keys only for Decrypt, DeriveSharedSecret, GenerateDataKey,
    // GenerateDataKeyPair and GenerateRandom). No attestation condition could ever let it through,
    // so it is denied outright, for everyone: KMS authorizes ReEncrypt as kms:ReEncryptFrom on the
    // source key, and a principal with kms:* through IAM could otherwise re-encrypt the TSK blob
    // to a key it owns and decrypt it there. (kms:ReEncryptTo is covered too; re-encrypting *to*
    // the TSK key has no use either.) Neither kms:PutKeyPolicy nor
    // kms:GenerateDataKeyWithoutPlaintext is ever named by these Deny statements.
    statements.push({ Sid: 'Deny ReEncrypt For Everyone', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:ReEncrypt*', Resource: '*' });
  }
  return { Version: '2012-10-17', Id: 'confidential-workflow-key-policy', Statement: statements };
}
