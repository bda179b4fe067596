import { evaluatePolicy, type PolicyDocument } from '../../internal/iam-policy.js';
import { KmsError } from './errors.js';
import type { KeyRecord, KmsState } from './state.js';

/** Who is calling: the authenticated principal, its account and its IAM identity policies. */
export interface Caller {
  arn: string;
  accountId: string;
  identityPolicies: readonly PolicyDocument[];
}

/**
 * Which forms a `KeyId` parameter accepts, per the KMS API reference:
 * `'key'` = key id or key ARN only (PutKeyPolicy, GetKeyPolicy, EnableKey,
 * DisableKey, CreateAlias TargetKeyId, ListAliases KeyId, ListKeyPolicies,
 * ScheduleKeyDeletion, CancelKeyDeletion); `'any'` = also alias name and
 * alias ARN (the cryptographic operations, DescribeKey, GetPublicKey).
 */
export type KeyIdForms = 'key' | 'any';

export interface ResolveOptions {
  forms: KeyIdForms;
  /** Whether the operation may use a key of another account (only by ARN). "Cross-account use: Yes" in the API reference. */
  crossAccount: boolean;
}

const KEY_ARN = /^arn:aws:kms:([^:]*):(\d{12}):key\/(.+)$/;
const ALIAS_ARN = /^arn:aws:kms:([^:]*):(\d{12}):(alias\/.+)$/;

/** The account of an IAM/STS principal ARN (`arn:aws:iam::A:user/x`, `arn:aws:sts::A:assumed-role/R/s`). */
export function accountOfPrincipal(arn: string): string | null {
  return /^arn:aws:(?:iam|sts)::(\d{12}):.+$/.exec(arn)?.[1] ?? null;
}

/**
 * Resolves a `KeyId` as KMS does: a bare key id or alias name names a key in
 * the caller's own account; an ARN names its account and region. An ARN of
 * another region never resolves, nor does another account's key for an
 * operation that is not cross-account.
 */
export function resolveKey(state: KmsState, id: string, caller: Caller, options: ResolveOptions): KeyRecord {
  const keyArn = KEY_ARN.exec(id);
  const aliasArn = ALIAS_ARN.exec(id);
  const isAlias = aliasArn !== null || id.startsWith('alias/');
  if (isAlias && options.forms === 'key') throw new KmsError('NotFoundException', `Invalid keyId ${id}`);
  const region = keyArn?.[1] ?? aliasArn?.[1] ?? state.region;
  const account = keyArn?.[2] ?? aliasArn?.[2] ?? caller.accountId;
  const aliasName = aliasArn ? aliasArn[3]! : id.startsWith('alias/') ? id : null;
  const notFound = () => {
    const arn = aliasName ? `arn:aws:kms:${region}:${account}:${aliasName}` : keyArn ? id : state.keyArn(account, id);
    return new KmsError('NotFoundException', `${aliasName ? 'Alias' : 'Key'} '${arn}' does not exist`);
  };
  if (id.startsWith('arn:') && !keyArn && !aliasArn) throw new KmsError('InvalidArnException', `Invalid arn ${id}`);
  if (region !== state.region) throw notFound();
  if (account !== caller.accountId && !options.crossAccount) throw notFound();
  const keyId = aliasName ? state.aliases.get(state.aliasArn(account, aliasName)) : keyArn ? keyArn[3]! : id;
  const key = keyId === undefined ? undefined : state.keys.get(keyId);
  if (!key || key.accountId !== account) throw notFound();
  return key;
}

const ALLOW_ALL: PolicyDocument = { Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

type IdentityDecision = 'allow' | 'deny' | 'none';

function identityDecision(caller: Caller, action: string, resource: string, conditions: Record<string, string | undefined>): IdentityDecision {
  let allowed = false;
  for (const doc of caller.identityPolicies) {
    const d = evaluatePolicy(doc, { principalArn: caller.arn, action, resource, conditions });
    if (d.effect === 'Deny' && d.explicit) return 'deny';
    if (d.effect === 'Allow') allowed = true;
  }
  return allowed ? 'allow' : 'none';
}

const denied = (caller: Caller, action: string, resource: string, why: string) =>
  new KmsError('AccessDeniedException', `User: ${caller.arn} is not authorized to perform: ${action} on resource: ${resource} ${why}`);

/**
 * Why a request on a key would be denied, or `null` when it is allowed. KMS
 * needs the key policy to allow the action: directly (the caller or its role
 * is the principal) or through the account-root statement, which delegates
 * to IAM, so the caller's identity policy must allow it too. For a key in
 * another account, both are always needed. An explicit Deny anywhere wins.
 */
export function keyDenial(policy: PolicyDocument, key: Pick<KeyRecord, 'arn' | 'accountId'>, action: string, caller: Caller, conditions: Record<string, string | undefined>): KmsError | null {
  const ctx = { principalArn: caller.arn, action, resource: key.arn, conditions };
  const direct = evaluatePolicy(policy, ctx);
  if (direct.effect === 'Deny' && direct.explicit) return denied(caller, action, key.arn, 'with an explicit deny in a resource-based policy');
  const identity = identityDecision(caller, action, key.arn, conditions);
  if (identity === 'deny') return denied(caller, action, key.arn, 'with an explicit deny in an identity-based policy');
  const sameAccount = caller.accountId === key.accountId;
  if (sameAccount && direct.effect === 'Allow') return null;
  const viaAccount = evaluatePolicy(policy, ctx, [ALLOW_ALL]).effect === 'Allow';
  if (!viaAccount) return denied(caller, action, key.arn, `because no resource-based policy allows the ${action} action`);
  if (identity !== 'allow') return denied(caller, action, key.arn, `because no identity-based policy allows the ${action} action`);
  return null;
}

/**
 * Authorizes what only IAM controls: the operations without a key
 * (CreateKey, ListKeys, ListAliases, GenerateRandom) and the alias side of
 * CreateAlias.
 */
export function authorizeIam(action: string, caller: Caller, resource = '*', conditions: Record<string, string | undefined> = {}): void {
  const identity = identityDecision(caller, action, resource, conditions);
  if (identity === 'deny') throw denied(caller, action, resource, 'with an explicit deny in an identity-based policy');
  if (identity === 'none') throw denied(caller, action, resource, `because no identity-based policy allows the ${action} action`);
}
