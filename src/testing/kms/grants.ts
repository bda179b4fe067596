import { randomBytes } from 'node:crypto';
import { allowingGrant, authorizeIam, isPrincipal, keyDenial, type GrantContext } from './access.js';
import { KmsError } from './errors.js';
import { dryRun, findKey, notPendingDeletion, requireString, type CallContext, type Handler, type Json, type OperationConfig } from './shared.js';
import { parsePolicy } from '../../internal/iam-policy.js';
import type { GrantRecord, KeyRecord } from './state.js';

/** The `GrantOperation` enum of the KMS API model. */
export const GRANT_OPERATIONS = [
  'CreateGrant',
  'Decapsulate',
  'Decrypt',
  'DeriveSharedSecret',
  'DescribeKey',
  'Encapsulate',
  'Encrypt',
  'GenerateDataKey',
  'GenerateDataKeyPair',
  'GenerateDataKeyPairWithoutPlaintext',
  'GenerateDataKeyWithoutPlaintext',
  'GenerateMac',
  'GetPublicKey',
  'ReEncryptFrom',
  'ReEncryptTo',
  'RetireGrant',
  'Sign',
  'Verify',
  'VerifyMac',
] as const;

/** Grant operations a key of each usage supports (the developer guide's "Grant operations" table); others make CreateGrant fail. */
const FOR_USAGE: Record<KeyRecord['usage'], readonly string[]> = {
  ENCRYPT_DECRYPT: [
    'Decrypt',
    'Encrypt',
    'GenerateDataKey',
    'GenerateDataKeyPair',
    'GenerateDataKeyPairWithoutPlaintext',
    'GenerateDataKeyWithoutPlaintext',
    'ReEncryptFrom',
    'ReEncryptTo',
    'CreateGrant',
    'RetireGrant',
    'DescribeKey',
  ],
  KEY_AGREEMENT: ['DeriveSharedSecret', 'GetPublicKey', 'CreateGrant', 'RetireGrant', 'DescribeKey'],
};

const validation = (message: string) => new KmsError('ValidationException', message);

/**
 * Reads `GrantTokens` (at most 10, each 1–8192 characters) and records the
 * grants they name in `ctx.grantTokenIds`: a token makes its grant effective
 * at once, before eventual consistency. A token that names no live grant
 * is `InvalidGrantTokenException`, so a retired or revoked grant's token
 * stops working.
 */
export function grantTokens(cfg: OperationConfig, body: Json, ctx: CallContext): void {
  const tokens = body.GrantTokens;
  ctx.grantTokenIds = new Set();
  if (tokens === undefined) return;
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== 'string')) throw new KmsError('SerializationException', 'GrantTokens must be a list of strings');
  if (tokens.length > 10) throw validation(`1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10`);
  for (const token of tokens as string[]) {
    if (token.length < 1 || token.length > 8192) throw validation(`1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 8192, Member must have length greater than or equal to 1]`);
    const grant = [...cfg.state.grants.values()].find((g) => g.tokens.includes(token));
    if (!grant) throw new KmsError('InvalidGrantTokenException', 'Grant token is invalid.');
    ctx.grantTokenIds.add(grant.grantId);
  }
}

function stringMap(v: unknown, field: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) throw new KmsError('SerializationException', `${field} must map strings to strings`);
  const map = v as Record<string, string>;
  if (Object.keys(map).length > 8) throw validation(`Each grant constraint can include up to 8 encryption context pairs (${field})`);
  if (Object.values(map).some((x) => x.length > 384)) throw validation(`An encryption context value in a grant constraint cannot exceed 384 characters (${field})`);
  return map;
}

function constraintsOf(body: Json, key: KeyRecord): GrantRecord['constraints'] {
  const c = body.Constraints;
  if (c === undefined) return undefined;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new KmsError('SerializationException', 'Constraints must be a structure');
  const { EncryptionContextEquals, EncryptionContextSubset, ...rest } = c as Json;
  if (Object.keys(rest).length > 0) throw validation(`The simulator supports the EncryptionContextEquals and EncryptionContextSubset grant constraints only (got ${Object.keys(rest).join(', ')})`);
  const equals = stringMap(EncryptionContextEquals, 'EncryptionContextEquals');
  const subset = stringMap(EncryptionContextSubset, 'EncryptionContextSubset');
  // Keys without an encryption context (asymmetric, HMAC, key agreement) take no encryption context constraint.
  if ((equals || subset) && key.usage !== 'ENCRYPT_DECRYPT') throw validation('Encryption context grant constraints are supported only for symmetric encryption KMS keys.');
  const out: NonNullable<GrantRecord['constraints']> = {};
  if (equals) out.EncryptionContextEquals = equals;
  if (subset) out.EncryptionContextSubset = subset;
  return equals || subset ? out : undefined;
}

function principalParam(cfg: OperationConfig, body: Json, field: 'GranteePrincipal' | 'RetiringPrincipal'): string | undefined {
  const v = body[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length < 1 || v.length > 256) throw validation(`1 validation error detected: Value at '${field.charAt(0).toLowerCase()}${field.slice(1)}' failed to satisfy constraint: Member must have length between 1 and 256`);
  if (!cfg.principalExists(v)) throw validation(`Invalid principal: ${v}`);
  return v;
}

/** A grant made under a grant's CreateGrant permission may only narrow it: fewer operations, an equally strict or stricter constraint. */
function narrows(child: Pick<GrantRecord, 'operations' | 'constraints'>, parent: GrantRecord): boolean {
  if (!child.operations.every((op) => parent.operations.includes(op))) return false;
  const pe = parent.constraints?.EncryptionContextEquals;
  const ps = parent.constraints?.EncryptionContextSubset;
  const ce = child.constraints?.EncryptionContextEquals;
  const cs = child.constraints?.EncryptionContextSubset;
  const lower = (m: Record<string, string>) => new Map(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v]));
  const includes = (big: Record<string, string>, small: Record<string, string>) => [...lower(small)].every(([k, v]) => lower(big).get(k) === v);
  if (pe) return ce !== undefined && includes(ce, pe) && includes(pe, ce) && cs === undefined;
  if (ps) return (ce !== undefined && includes(ce, ps)) || (cs !== undefined && includes(cs, ps));
  return true;
}

const entry = (g: GrantRecord): Json => ({
  KeyId: g.keyArn,
  GrantId: g.grantId,
  ...(g.name !== undefined ? { Name: g.name } : {}),
  CreationDate: g.creationDate,
  GranteePrincipal: g.granteePrincipal,
  ...(g.retiringPrincipal !== undefined ? { RetiringPrincipal: g.retiringPrincipal } : {}),
  IssuingAccount: g.issuingAccount,
  Operations: g.operations,
  ...(g.constraints ? { Constraints: g.constraints } : {}),
});

/** `Limit` (1–100, default 50) and `Marker` (the index of the next entry, opaque to callers) of a list operation. */
function page<T>(items: T[], body: Json): { items: T[]; next?: string } {
  const limit = body.Limit ?? 50;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw validation(`1 validation error detected: Value '${String(limit)}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100`);
  }
  let start = 0;
  if (body.Marker !== undefined) {
    const m = typeof body.Marker === 'string' ? /^grants-(\d+)$/.exec(Buffer.from(body.Marker, 'base64').toString('utf8')) : null;
    if (!m) throw new KmsError('InvalidMarkerException', 'Invalid marker');
    start = Number(m[1]);
  }
  const slice = items.slice(start, start + limit);
  const more = start + limit < items.length;
  return { items: slice, ...(more ? { next: Buffer.from(`grants-${start + limit}`).toString('base64') } : {}) };
}

/** The grant a RetireGrant/RevokeGrant names by key and grant id. */
function grantById(cfg: OperationConfig, key: KeyRecord, grantId: string): GrantRecord {
  if (!/^[0-9a-f]{64}$/.test(grantId)) throw new KmsError('InvalidGrantIdException', `Invalid grant id ${grantId}`);
  const grant = cfg.state.grants.get(grantId);
  if (!grant || grant.keyArn !== key.arn) throw new KmsError('NotFoundException', `Grant ID ${grantId} not found`);
  return grant;
}

export const GRANT_HANDLERS: Record<string, Handler> = {
  async CreateGrant(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', true);
    for (const f of ['GranteeServicePrincipal', 'RetiringServicePrincipal']) if (body[f] !== undefined) throw validation(`The simulator has no service principals (${f})`);
    const grantee = principalParam(cfg, body, 'GranteePrincipal');
    if (grantee === undefined) throw validation("1 validation error detected: Value null at 'granteePrincipal' failed to satisfy constraint: Member must not be null");
    const retiring = principalParam(cfg, body, 'RetiringPrincipal');
    const ops = body.Operations;
    if (!Array.isArray(ops) || ops.length === 0) throw validation("1 validation error detected: Value null at 'operations' failed to satisfy constraint: Member must not be null");
    for (const op of ops) {
      if (!(GRANT_OPERATIONS as readonly unknown[]).includes(op)) {
        throw validation(`1 validation error detected: Value '[${ops.join(', ')}]' at 'operations' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [${GRANT_OPERATIONS.join(', ')}]]`);
      }
    }
    const operations = [...new Set(ops as string[])];
    const unsupported = operations.filter((op) => !FOR_USAGE[key.usage].includes(op));
    if (unsupported.length > 0) throw validation(`Grant operations ${unsupported.join(', ')} are not valid for a KMS key with key usage ${key.usage} and key spec ${key.spec}.`);
    const constraints = constraintsOf(body, key);
    const name = body.Name;
    if (name !== undefined && (typeof name !== 'string' || !/^[a-zA-Z0-9:/_-]{1,256}$/.test(name))) {
      throw validation(`1 validation error detected: Value '${String(name)}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$`);
    }
    ctx.audit.resources.push(key.arn);
    const conditions: Record<string, string | undefined> = { 'kms:GranteePrincipal': grantee, 'kms:RetiringPrincipal': retiring, 'kms:GrantIsForAWSResource': 'false' };
    const grants: GrantContext = { grants: cfg.state.grantsOf(key.arn), tokenGrantIds: ctx.grantTokenIds ?? new Set(), nowMs: ctx.now.getTime(), takesEncryptionContext: false };
    const policy = parsePolicy(key.policy);
    const denial = keyDenial(policy, key, 'kms:CreateGrant', ctx.caller, conditions, grants);
    if (denial) throw denial;
    // Allowed only by a grant: the new grant may not be wider than that one.
    const withoutGrants = keyDenial(policy, key, 'kms:CreateGrant', ctx.caller, conditions);
    if (withoutGrants) {
      const parents = grants.grants.filter((g) => allowingGrant({ ...grants, grants: [g] }, 'kms:CreateGrant', ctx.caller, key.arn));
      if (!parents.some((p) => narrows({ operations, ...(constraints ? { constraints } : {}) }, p))) throw withoutGrants;
    }
    notPendingDeletion(key);
    dryRun(body);
    const same = (g: GrantRecord) =>
      g.name === name &&
      g.granteePrincipal === grantee &&
      g.retiringPrincipal === retiring &&
      JSON.stringify([...g.operations].sort()) === JSON.stringify([...operations].sort()) &&
      JSON.stringify(g.constraints ?? null) === JSON.stringify(constraints ?? null);
    // Name makes CreateGrant idempotent: the same parameters return the existing grant's id (with a new token).
    const existing = typeof name === 'string' ? cfg.state.grantsOf(key.arn).find(same) : undefined;
    const token = randomBytes(96).toString('base64url');
    if (existing) {
      existing.tokens.push(token);
      cfg.state.save();
      return { GrantToken: token, GrantId: existing.grantId };
    }
    const grant: GrantRecord = {
      grantId: randomBytes(32).toString('hex'),
      keyArn: key.arn,
      ...(typeof name === 'string' ? { name } : {}),
      creationDate: Math.floor(ctx.now.getTime() / 1000),
      granteePrincipal: grantee,
      ...(retiring !== undefined ? { retiringPrincipal: retiring } : {}),
      issuingAccount: `arn:aws:iam::${key.accountId}:root`,
      operations,
      ...(constraints ? { constraints } : {}),
      tokens: [token],
      effectiveAtMs: ctx.now.getTime() + cfg.grantPropagationMs,
    };
    cfg.state.grants.set(grant.grantId, grant);
    cfg.state.save();
    return { GrantToken: token, GrantId: grant.grantId };
  },

  async ListGrants(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', true);
    if (body.GranteeServicePrincipal !== undefined) throw validation('The simulator has no service principals (GranteeServicePrincipal)');
    ctx.audit.resources.push(key.arn);
    authorizeKey(key, 'kms:ListGrants', ctx);
    let grants = cfg.state.grantsOf(key.arn);
    if (body.GrantId !== undefined) grants = grants.filter((g) => g.grantId === body.GrantId);
    if (body.GranteePrincipal !== undefined) grants = grants.filter((g) => g.granteePrincipal === body.GranteePrincipal);
    const { items, next } = page(grants, body);
    return { Grants: items.map(entry), ...(next ? { NextMarker: next } : {}), Truncated: next !== undefined };
  },

  async ListRetirableGrants(cfg, body, ctx) {
    const retiring = requireString(body, 'RetiringPrincipal');
    if (body.RetiringServicePrincipal !== undefined) throw validation('The simulator has no service principals (RetiringServicePrincipal)');
    authorizeIam('kms:ListRetirableGrants', ctx.caller);
    // "All grants in the account and Region that have the specified retiring principal": grants on the caller's account's keys in this Region.
    const grants = [...cfg.state.grants.values()].filter((g) => g.retiringPrincipal === retiring && g.keyArn.startsWith(`arn:aws:kms:${ctx.region}:${ctx.caller.accountId}:`));
    const { items, next } = page(grants, body);
    return { Grants: items.map(entry), ...(next ? { NextMarker: next } : {}), Truncated: next !== undefined };
  },

  async RetireGrant(cfg, body, ctx) {
    let grant: GrantRecord | undefined;
    if (body.GrantToken !== undefined) {
      if (typeof body.GrantToken !== 'string') throw new KmsError('SerializationException', 'GrantToken must be a string');
      grant = [...cfg.state.grants.values()].find((g) => g.tokens.includes(body.GrantToken as string));
      if (!grant) throw new KmsError('InvalidGrantTokenException', 'Grant token is invalid.');
      if (body.KeyId !== undefined || body.GrantId !== undefined) {
        const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', true);
        if (key.arn !== grant.keyArn || body.GrantId !== grant.grantId) throw new KmsError('InvalidGrantIdException', 'The grant token and the grant id do not name the same grant.');
      }
    } else {
      if (body.KeyId === undefined || body.GrantId === undefined) throw validation('Either GrantToken, or both KeyId and GrantId, must be specified.');
      const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', true);
      grant = grantById(cfg, key, requireString(body, 'GrantId'));
    }
    ctx.audit.resources.push(grant.keyArn);
    // The grant says who may retire it: its retiring principal, its grantee if it allows RetireGrant, or the account that created it.
    const issuing = /^arn:aws:iam::(\d{12}):root$/.exec(grant.issuingAccount)?.[1];
    const allowed =
      (grant.retiringPrincipal !== undefined && isPrincipal(grant.retiringPrincipal, ctx.caller, 'kms:RetireGrant', grant.keyArn)) ||
      (grant.operations.includes('RetireGrant') && isPrincipal(grant.granteePrincipal, ctx.caller, 'kms:RetireGrant', grant.keyArn)) ||
      (issuing !== undefined && ctx.caller.arn === `arn:aws:iam::${issuing}:root`);
    if (!allowed) {
      throw new KmsError('AccessDeniedException', `User: ${ctx.caller.arn} is not authorized to perform: kms:RetireGrant on resource: ${grant.keyArn} because the grant does not name it as a retiring principal`);
    }
    dryRun(body);
    cfg.state.grants.delete(grant.grantId);
    cfg.state.save();
    return {};
  },

  async RevokeGrant(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', true);
    const grantId = requireString(body, 'GrantId');
    ctx.audit.resources.push(key.arn);
    authorizeKey(key, 'kms:RevokeGrant', ctx);
    const grant = grantById(cfg, key, grantId);
    dryRun(body);
    cfg.state.grants.delete(grant.grantId);
    cfg.state.save();
    return {};
  },
};

/** Key policy and IAM only: grants never allow ListGrants or RevokeGrant (they are not grant operations). */
function authorizeKey(key: KeyRecord, action: string, ctx: CallContext): void {
  const denial = keyDenial(parsePolicy(key.policy), key, action, ctx.caller, {});
  if (denial) throw denial;
}
