import { evaluatePolicy, type PolicyDocument } from '../../internal/iam-policy.js';
import { KmsError } from './errors.js';
import type { GrantRecord, KeyRecord, KmsState } from './state.js';

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
  /** The region the request was made in (its SigV4 scope). */
  region: string;
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
  const region = keyArn?.[1] ?? aliasArn?.[1] ?? options.region;
  const account = keyArn?.[2] ?? aliasArn?.[2] ?? caller.accountId;
  const aliasName = aliasArn ? aliasArn[3]! : id.startsWith('alias/') ? id : null;
  const notFound = () => {
    const arn = aliasName ? `arn:aws:kms:${region}:${account}:${aliasName}` : keyArn ? id : state.keyArn(region, account, id);
    return new KmsError('NotFoundException', `${aliasName ? 'Alias' : 'Key'} '${arn}' does not exist`);
  };
  if (id.startsWith('arn:') && !keyArn && !aliasArn) throw new KmsError('InvalidArnException', `Invalid arn ${id}`);
  if (region !== options.region) throw notFound();
  if (account !== caller.accountId && !options.crossAccount) throw notFound();
  const keyId = aliasName ? state.aliases.get(state.aliasArn(region, account, aliasName)) : keyArn ? keyArn[3]! : id;
  const key = keyId === undefined ? undefined : state.key(region, account, keyId);
  if (!key) throw notFound();
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

/** What a request brings that grants look at: the grant tokens it carried, the time, and its encryption context. */
export interface GrantContext {
  grants: readonly GrantRecord[];
  /** Grant ids named by the request's (valid) grant tokens. */
  tokenGrantIds: ReadonlySet<string>;
  nowMs: number;
  /** The request's encryption context, for operations that take one (grant constraints apply only to them). */
  encryptionContext?: Record<string, string> | undefined;
  takesEncryptionContext: boolean;
}

/** `arn:aws:sts::A:assumed-role/R/s` → `arn:aws:iam::A:role/R` (the role exists when a session of it does). */
export function roleOfSession(arn: string): string {
  const m = /^arn:aws:sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
  return m ? `arn:aws:iam::${m[1]}:role/${m[2]}` : arn;
}

/** Whether `principal` (as a grant names it) is the caller: its ARN, the role of its session, or its account (then IAM must allow too). */
export function isPrincipal(principal: string, caller: Caller, action: string, resource: string): boolean {
  if (principal === caller.arn || principal === roleOfSession(caller.arn)) return true;
  if (principal === `arn:aws:iam::${caller.accountId}:root` || principal === caller.accountId) return identityDecision(caller, action, resource, {}) === 'allow';
  return false;
}

/** Grant constraints compare encryption context keys case-insensitively, values exactly (API reference, GrantConstraints). */
function lowerKeys(ec: Record<string, string> | undefined): Map<string, string> {
  return new Map(Object.entries(ec ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
}

export function constraintsMet(grant: Pick<GrantRecord, 'constraints'>, ec: Record<string, string> | undefined): boolean {
  const request = lowerKeys(ec);
  const equals = grant.constraints?.EncryptionContextEquals;
  if (equals) {
    const want = lowerKeys(equals);
    if (want.size !== request.size || [...want].some(([k, v]) => request.get(k) !== v)) return false;
  }
  const subset = grant.constraints?.EncryptionContextSubset;
  if (subset && [...lowerKeys(subset)].some(([k, v]) => request.get(k) !== v)) return false;
  return true;
}

/** The grant that allows `action` to the caller, if any: it names the operation and the caller, is effective (token or time), and its constraints hold. */
export function allowingGrant(grants: GrantContext, action: string, caller: Caller, resource: string): GrantRecord | undefined {
  const operation = action.replace(/^kms:/, '');
  return grants.grants.find(
    (g) =>
      g.operations.includes(operation) &&
      isPrincipal(g.granteePrincipal, caller, action, resource) &&
      (grants.tokenGrantIds.has(g.grantId) || grants.nowMs >= g.effectiveAtMs) &&
      (!grants.takesEncryptionContext || constraintsMet(g, grants.encryptionContext)),
  );
}

/**
 * Why a request on a key would be denied, or `null` when it is allowed, in
 * KMS's evaluation order: an explicit Deny in the key policy or in the
 * caller's IAM policies ends it (no grant re-opens it); otherwise the key
 * policy allows directly (the caller or its role is the principal), or
 * through the account-root statement, which delegates to IAM so the
 * caller's identity policy must allow it too (for a key in another account,
 * both are always needed), or a grant allows it.
 */
export function keyDenial(
  policy: PolicyDocument,
  key: Pick<KeyRecord, 'arn' | 'accountId'>,
  action: string,
  caller: Caller,
  conditions: Record<string, string | undefined>,
  grants?: GrantContext,
): KmsError | null {
  const ctx = { principalArn: caller.arn, action, resource: key.arn, conditions };
  const direct = evaluatePolicy(policy, ctx);
  if (direct.effect === 'Deny' && direct.explicit) return denied(caller, action, key.arn, 'with an explicit deny in a resource-based policy');
  const identity = identityDecision(caller, action, key.arn, conditions);
  if (identity === 'deny') return denied(caller, action, key.arn, 'with an explicit deny in an identity-based policy');
  const sameAccount = caller.accountId === key.accountId;
  if (sameAccount && direct.effect === 'Allow') return null;
  const viaAccount = evaluatePolicy(policy, ctx, [ALLOW_ALL]).effect === 'Allow';
  if (viaAccount && identity === 'allow') return null;
  if (grants && allowingGrant(grants, action, caller, key.arn)) return null;
  if (!viaAccount) return denied(caller, action, key.arn, `because no resource-based policy allows the ${action} action`);
  return denied(caller, action, key.arn, `because no identity-based policy allows the ${action} action`);
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
