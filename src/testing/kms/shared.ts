import type { TrustAnchor } from '../../attestation/trust.js';
import { asArray, parsePolicy, PolicySyntaxError, type PolicyDocument } from '../../internal/iam-policy.js';
import { keyDenial, resolveKey, type Caller, type GrantContext, type KeyIdForms } from './access.js';
import { KmsError } from './errors.js';
import type { KeyRecord, KmsState } from './state.js';

/* What every operation handler shares: the call context, parameter readers, key lookup, the key state table, authorization and KeyMetadata. */

export interface CallContext {
  caller: Caller;
  now: Date;
  /** The region the request was made in (its SigV4 credential scope). */
  region: string;
  /** Ids of the grants named by the request's `GrantTokens` (validated by {@link grantTokens}). */
  grantTokenIds?: Set<string>;
  /** Filled by operations for the audit trail. */
  audit: { resources: string[]; recipient?: Record<string, string>; requestParameters: Record<string, unknown> };
}

export interface OperationConfig {
  state: KmsState;
  trustAnchors: readonly TrustAnchor[];
  attestationMaxAgeMs: number;
  /** Whether an IAM principal ARN (user, role, assumed-role session, account root) exists, for key policy validation. */
  principalExists: (arn: string) => boolean;
  /** The regions the simulator serves (the home region first). */
  regions: readonly string[];
  /** How long a new grant needs before it works without its grant token (KMS: eventual consistency, "usually less than five minutes"). */
  grantPropagationMs: number;
}

export type Json = Record<string, unknown>;

export const b64 = (v: unknown, field: string): Buffer => {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new KmsError('ValidationException', `1 validation error detected: Value at '${field}' failed to satisfy constraint: Member must be a base64 blob`);
  return Buffer.from(v, 'base64');
};

export function requireString(body: Json, field: string): string {
  const v = body[field];
  if (typeof v !== 'string' || v.length === 0) {
    throw new KmsError('ValidationException', `1 validation error detected: Value null at '${field.charAt(0).toLowerCase()}${field.slice(1)}' failed to satisfy constraint: Member must not be null`);
  }
  return v;
}

export function context(body: Json, field = 'EncryptionContext'): Record<string, string> | undefined {
  const ec = body[field];
  if (ec === undefined) return undefined;
  if (typeof ec !== 'object' || ec === null || Object.values(ec).some((v) => typeof v !== 'string')) throw new KmsError('ValidationException', `${field} must map strings to strings`);
  return ec as Record<string, string>;
}

/** Resolves a `KeyId` parameter with the forms this operation accepts (see {@link KeyIdForms}). */
export function findKey(cfg: OperationConfig, id: string, ctx: CallContext, forms: KeyIdForms, crossAccount: boolean): KeyRecord {
  cfg.state.expire(ctx.now);
  return resolveKey(cfg.state, id, ctx.caller, { region: ctx.region, forms, crossAccount });
}

/** The key state table of KMS, for the operations the simulator serves. */
export function usable(key: KeyRecord, usage: KeyRecord['usage'] = 'ENCRYPT_DECRYPT'): void {
  if (key.keyState === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
  if (key.keyState === 'PendingReplicaDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending replica deletion.`);
  if (key.keyState === 'PendingImport') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending import.`);
  if (key.keyState === 'Disabled') throw new KmsError('DisabledException', `${key.arn} is disabled.`);
  if (key.usage !== usage) throw new KmsError('InvalidKeyUsageException', `${key.arn} key usage is ${key.usage} which is not valid for this operation.`);
}

export function notPendingDeletion(key: KeyRecord): void {
  if (key.keyState === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
  if (key.keyState === 'PendingReplicaDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending replica deletion.`);
}

/** `DryRun`: everything is checked, nothing is done; KMS answers with an error either way. */
export function dryRun(body: Json): void {
  if (body.DryRun === undefined) return;
  if (typeof body.DryRun !== 'boolean') throw new KmsError('SerializationException', 'DryRun must be a boolean');
  if (body.DryRun) throw new KmsError('DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.');
}


/**
 * Authorizes `action` on `key` for the caller: key policy, IAM and the key's
 * grants, in KMS's order (see {@link keyDenial}). `ec` is given for
 * operations that take an encryption context (grant constraints apply only
 * to them).
 */
export function authorize(cfg: OperationConfig, key: KeyRecord, action: string, ctx: CallContext, conditions: Record<string, string | undefined>, ec?: { context: Record<string, string> | undefined }): void {
  const grants: GrantContext = {
    grants: cfg.state.grantsOf(key.arn),
    tokenGrantIds: ctx.grantTokenIds ?? new Set(),
    nowMs: ctx.now.getTime(),
    encryptionContext: ec?.context,
    takesEncryptionContext: ec !== undefined,
  };
  const denial = keyDenial(parsePolicy(key.policy), key, action, ctx.caller, conditions, grants);
  if (denial) throw denial;
}


export function metadata(cfg: OperationConfig, key: KeyRecord): Json {
  return {
    AWSAccountId: key.accountId,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: key.creationDate,
    Enabled: key.keyState === 'Enabled',
    Description: key.description,
    KeyUsage: key.usage,
    KeyState: key.keyState,
    ...(key.deletionDate !== undefined ? { DeletionDate: key.deletionDate } : {}),
    ...(key.imported?.validTo !== undefined ? { ValidTo: key.imported.validTo } : {}),
    Origin: key.origin,
    ...(key.imported?.materialId && key.material.length > 0 ? { CurrentKeyMaterialId: key.imported.materialId } : {}),
    ...(key.imported?.expirationModel ? { ExpirationModel: key.imported.expirationModel } : {}),
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: key.spec,
    KeySpec: key.spec,
    ...(key.usage === 'ENCRYPT_DECRYPT' ? { EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'] } : { KeyAgreementAlgorithms: ['ECDH'] }),
    MultiRegion: key.multiRegion,
    ...(key.multiRegion ? { MultiRegionConfiguration: multiRegionConfiguration(cfg, key) } : {}),
  };
}

/** KMS's MultiRegionConfiguration: this key's role, the primary, and the replicas (every region but the primary's). */
export function multiRegionConfiguration(cfg: OperationConfig, key: KeyRecord): Json {
  const related = cfg.state.related(key);
  const primary = related.find((k) => k.primary);
  return {
    MultiRegionKeyType: key.primary ? 'PRIMARY' : 'REPLICA',
    ...(primary ? { PrimaryKey: { Arn: primary.arn, Region: primary.region } } : {}),
    ReplicaKeys: related.filter((k) => !k.primary).map((k) => ({ Arn: k.arn, Region: k.region })),
  };
}

export function defaultPolicy(accountId: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'key-default-1',
    Statement: [{ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' }],
  });
}

export const INVALID_PRINCIPALS = 'Policy contains a statement with one or more invalid principals.';

/**
 * Validates a key policy as KMS does before storing it: the syntax, a
 * principal in every statement that exists (an ARN of a known IAM entity,
 * a known account, or "*"), and, unless `bypass`, the lockout safety check:
 * the caller must still be allowed `kms:PutKeyPolicy` under the new policy.
 */
export function checkPolicy(cfg: OperationConfig, text: unknown, key: Pick<KeyRecord, 'arn' | 'accountId'>, ctx: CallContext, bypass: unknown): string {
  if (typeof text !== 'string') throw new KmsError('ValidationException', "1 validation error detected: Value null at 'policy' failed to satisfy constraint: Member must not be null");
  if (bypass !== undefined && typeof bypass !== 'boolean') throw new KmsError('SerializationException', 'BypassPolicyLockoutSafetyCheck must be a boolean');
  let policy: PolicyDocument;
  try {
    policy = parsePolicy(text);
  } catch (err) {
    if (err instanceof PolicySyntaxError) throw new KmsError('MalformedPolicyDocumentException', err.message);
    throw err;
  }
  for (const s of policy.Statement) {
    if (s.Resource === undefined) throw new KmsError('MalformedPolicyDocumentException', 'Policy contains a statement without a Resource element.');
    const principal = s.Principal as unknown;
    if (principal === '*') continue;
    if (typeof principal !== 'object' || principal === null || Object.keys(principal).length === 0) throw new KmsError('MalformedPolicyDocumentException', INVALID_PRINCIPALS);
    for (const [kind, values] of Object.entries(principal)) {
      const list = asArray(values as string | string[]);
      const ok =
        list.length > 0 &&
        list.every((v) => typeof v === 'string' && (kind === 'AWS' ? v === '*' || cfg.principalExists(v) : kind === 'Service' && /^[a-z0-9.-]+\.amazonaws\.com$/.test(v)));
      if (!ok) throw new KmsError('MalformedPolicyDocumentException', INVALID_PRINCIPALS);
    }
  }
  if (bypass !== true && keyDenial(policy, key, 'kms:PutKeyPolicy', ctx.caller, {})) {
    throw new KmsError('MalformedPolicyDocumentException', 'The new key policy will not allow you to update the key policy in the future.');
  }
  return text;
}


export type Handler = (cfg: OperationConfig, body: Json, ctx: CallContext) => Promise<Json>;
