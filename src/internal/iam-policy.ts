/**
 * Key policy evaluation as KMS does it for the attested-decrypt use case:
 * principals (direct, account root delegating to IAM, "*"), actions and
 * resources with wildcards, Allow/Deny with explicit deny winning and
 * default deny, and the basic string condition operators on
 * `kms:RecipientAttestation:*` and `kms:EncryptionContext:*` keys.
 *
 * Used by the KMS simulator, by the parent side (`nitro-enclave-sdk/parent`:
 * `check-policy`, `buildKeyPolicy`) and by the enclave runtime to explain an
 * AccessDenied (`kms/diagnose.ts`). It lives in `internal/`, below both
 * subpaths, so that importing `nitro-enclave-sdk/kms` never loads parent code:
 * `/parent` re-exports it, `/kms` only imports it.
 */

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: '*' | { AWS: string | string[] };
  Action: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[] | boolean>>;
}

/** A parsed KMS key policy or IAM identity policy (the subset of the grammar KMS key policies use). */
export interface PolicyDocument {
  Version?: string;
  Id?: string;
  Statement: PolicyStatement[];
}

/**
 * A policy document that does not parse, or uses an operator or element the evaluator does not know.
 *
 * @example
 * ```ts
 * try { parsePolicy(json); } catch (err) { if (err instanceof PolicySyntaxError) console.error(err.message); }
 * ```
 */
export class PolicySyntaxError extends Error {
  override name = 'PolicySyntaxError';
}

const OPERATORS = new Set([
  'StringEquals',
  'StringNotEquals',
  'StringEqualsIgnoreCase',
  'StringNotEqualsIgnoreCase',
  'StringLike',
  'StringNotLike',
  'Null',
  'Bool',
]);

export const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/**
 * Parses and validates a policy JSON string; throws {@link PolicySyntaxError}.
 *
 * @example
 * ```ts
 * const policy = parsePolicy((await kms.send(new GetKeyPolicyCommand({ KeyId }))).Policy!);
 * ```
 */
export function parsePolicy(json: string): PolicyDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new PolicySyntaxError('the policy is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null) throw new PolicySyntaxError('the policy must be a JSON object');
  const statements = asArray((doc as { Statement?: unknown }).Statement as PolicyStatement | PolicyStatement[]);
  if (statements.length === 0) throw new PolicySyntaxError('the policy has no Statement');
  for (const [i, s] of statements.entries()) {
    const where = `Statement ${s?.Sid ? `"${s.Sid}"` : i}`;
    if (typeof s !== 'object' || s === null) throw new PolicySyntaxError(`${where} is not an object`);
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') throw new PolicySyntaxError(`${where}: Effect must be Allow or Deny`);
    if (asArray(s.Action).length === 0 || !asArray(s.Action).every((a) => typeof a === 'string')) throw new PolicySyntaxError(`${where}: Action is required`);
    for (const [op, block] of Object.entries(s.Condition ?? {})) {
      if (!OPERATORS.has(op)) throw new PolicySyntaxError(`${where}: unsupported condition operator ${op}`);
      if (typeof block !== 'object' || block === null) throw new PolicySyntaxError(`${where}: ${op} must map keys to values`);
    }
  }
  return { ...(doc as PolicyDocument), Statement: statements };
}

/** What a request brings to policy evaluation. */
export interface RequestContext {
  /** The caller, e.g. `arn:aws:sts::111122223333:assumed-role/EnclaveInstanceRole/i-0abc`. */
  principalArn: string;
  /** e.g. `kms:Decrypt`. */
  action: string;
  /** The key ARN. */
  resource: string;
  /** Condition keys (any case) to values; absent keys are simply missing. */
  conditions: Record<string, string | undefined>;
}

/** The outcome of {@link evaluatePolicy}: allowed by a statement, denied explicitly by one, or denied implicitly (with the conditions that were not met). */
export type Decision =
  | { effect: 'Allow'; by: string }
  | { effect: 'Deny'; explicit: true; by: string }
  | { effect: 'Deny'; explicit: false; unmet: string[] };

function wildcard(pattern: string, value: string, ignoreCase: boolean): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, ignoreCase ? 'i' : '');
  return re.test(value);
}

function accountOf(arn: string): string | null {
  return /^arn:aws[\w-]*:(?:iam|sts)::(\d{12}):/.exec(arn)?.[1] ?? null;
}

/** `arn:aws:sts::A:assumed-role/R/s` is the role `arn:aws:iam::A:role/R` for policy matching. */
function roleOf(arn: string): string {
  const m = /^arn:(aws[\w-]*):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
  return m ? `arn:${m[1]}:iam::${m[2]}:role/${m[3]}` : arn;
}

/** How a statement's principal covers the caller: directly, or through the account (IAM delegation). */
function principalMatch(statement: PolicyStatement, caller: string): 'direct' | 'account' | null {
  if (statement.Principal === undefined) return 'direct'; // identity policies have no Principal
  if (statement.Principal === '*') return 'direct';
  const callerRole = roleOf(caller);
  let result: 'direct' | 'account' | null = null;
  for (const p of asArray(statement.Principal.AWS)) {
    if (p === '*' || p === caller || p === callerRole) return 'direct';
    const account = /^\d{12}$/.test(p) ? p : /^arn:aws[\w-]*:iam::(\d{12}):root$/.exec(p)?.[1];
    if (account && account === accountOf(caller)) {
      if (caller === `arn:aws:iam::${account}:root`) return 'direct';
      result = 'account';
    }
  }
  return result;
}

function lookup(ctx: RequestContext, key: string): string | undefined {
  const wanted = key.toLowerCase();
  for (const [k, v] of Object.entries(ctx.conditions)) if (k.toLowerCase() === wanted) return v;
  return undefined;
}

/** Returns the unmet condition descriptions (empty when all conditions hold). */
export function unmetConditions(statement: PolicyStatement, ctx: RequestContext): string[] {
  const unmet: string[] = [];
  for (const [op, block] of Object.entries(statement.Condition ?? {})) {
    for (const [key, expected] of Object.entries(block)) {
      const values = asArray(expected).map(String);
      const actual = lookup(ctx, key);
      let ok: boolean;
      switch (op) {
        case 'Null':
          ok = values.some((v) => (v === 'true') === (actual === undefined));
          break;
        case 'Bool':
          ok = actual !== undefined && values.some((v) => v.toLowerCase() === actual.toLowerCase());
          break;
        default: {
          const negated = op.includes('Not');
          const ignoreCase = op.endsWith('IgnoreCase');
          const like = op.includes('Like');
          if (actual === undefined) {
            ok = negated; // AWS: a negated operator matches when the key is absent
            break;
          }
          const hit = values.some((v) => (like ? wildcard(v, actual, false) : ignoreCase ? v.toLowerCase() === actual.toLowerCase() : v === actual));
          ok = negated ? !hit : hit;
        }
      }
      if (!ok) unmet.push(`${op} ${key} ${JSON.stringify(expected)} (request: ${actual === undefined ? 'absent' : JSON.stringify(actual)})`);
    }
  }
  return unmet;
}

/** Whether the statement's actions and resources cover the request (principal and conditions aside). */
export function statementApplies(statement: PolicyStatement, ctx: Pick<RequestContext, 'action' | 'resource'>): boolean {
  const action = asArray(statement.Action).some((a) => wildcard(a, ctx.action, true));
  const resource = statement.Resource === undefined || asArray(statement.Resource).some((r) => wildcard(r, ctx.resource, false));
  return action && resource;
}

const label = (s: PolicyStatement, i: number) => (s.Sid ? `"${s.Sid}"` : `#${i}`);

/**
 * Evaluates a key policy (and the caller's IAM identity policies) for one
 * request: explicit Deny wins, then a direct Allow in the key policy, then an
 * account-root Allow in the key policy combined with an identity-policy Allow;
 * otherwise the default deny, with the conditions that stood in the way.
 *
 * @example
 * ```ts
 * const decision = evaluatePolicy(policy, {
 *   principalArn: 'arn:aws:sts::111122223333:assumed-role/EnclaveInstanceRole/i-0abc',
 *   action: 'kms:Decrypt',
 *   resource: keyArn,
 *   conditions: { 'kms:RecipientAttestation:ImageSha384': pcr0 },
 * });
 * if (decision.effect === 'Deny' && !decision.explicit) console.log(decision.unmet);
 * ```
 */
export function evaluatePolicy(keyPolicy: PolicyDocument, ctx: RequestContext, identityPolicies: readonly PolicyDocument[] = []): Decision {
  const unmet: string[] = [];
  let direct: string | null = null;
  let delegated = false;
  for (const [i, s] of keyPolicy.Statement.entries()) {
    const who = principalMatch(s, ctx.principalArn);
    if (!who || !statementApplies(s, ctx)) continue;
    const missing = unmetConditions(s, ctx);
    if (s.Effect === 'Deny') {
      if (missing.length === 0 && who === 'direct') return { effect: 'Deny', explicit: true, by: `key policy statement ${label(s, i)}` };
      continue;
    }
    if (missing.length > 0) {
      unmet.push(...missing.map((m) => `statement ${label(s, i)}: ${m}`));
      continue;
    }
    if (who === 'direct') direct ??= `key policy statement ${label(s, i)}`;
    else delegated = true;
  }
  let identityAllow: string | null = null;
  for (const policy of identityPolicies) {
    for (const [i, s] of policy.Statement.entries()) {
      if (!statementApplies(s, ctx)) continue;
      const missing = unmetConditions(s, ctx);
      if (missing.length > 0) continue;
      if (s.Effect === 'Deny') return { effect: 'Deny', explicit: true, by: `identity policy statement ${label(s, i)}` };
      identityAllow ??= `identity policy statement ${label(s, i)} (enabled by the key policy's account statement)`;
    }
  }
  if (direct) return { effect: 'Allow', by: direct };
  if (delegated && identityAllow) return { effect: 'Allow', by: identityAllow };
  return { effect: 'Deny', explicit: false, unmet };
}
