import { randomBytes } from 'node:crypto';
import { asArray, evaluatePolicy, statementApplies, type PolicyDocument, type PolicyStatement, type RequestContext } from '../internal/iam-policy.js';
import { KMS_OPERATIONS, type KmsOperationInfo } from '../internal/kms-operations.js';

/**
 * The judgment half of the key audit: given a key policy and the key's grants (as KMS answered
 * them, over TLS the enclave terminates), find every way a principal other than the admitted
 * enclave could reach an operation that returns the key's plaintext material or makes a
 * ciphertext under it whose plaintext the caller chose or receives (classes `plaintext` and
 * `ciphertext` of `internal/kms-operations.ts`), or replicate the key.
 *
 * IAM identity policies, SCPs and other accounts' policies cannot be read from the enclave, and
 * the seed's "Enable IAM User Permissions" statement hands every such path to them. So an Allow
 * never proves anything here: only the key policy's explicit Deny statements close a path. For
 * each operation, hostile request contexts are built (who calls × what attestation they bring) and
 * the Deny statements alone must deny every one of them.
 */

/** One open path: what is reachable, how, and through which statement or grant. */
export interface KeyAuditFinding {
  /** e.g. `kms:Encrypt`. */
  readonly action: string;
  /** e.g. `without attestation`. */
  readonly path: string;
  /** A caller that gets through, e.g. `arn:aws:iam::111122223333:root`. */
  readonly principal: string;
  /** The whole sentence, as it appears in the error message. */
  readonly text: string;
}

/** The upper bound on hostile attestation contexts per principal and operation; a policy that needs more is refused (fail closed). */
const MAX_ATTESTATION_CONTEXTS = 512;
const ATTESTATION_KEY = /^kms:recipientattestation:(imagesha384|pcr(\d+))$/i;
const ZEROS = '0'.repeat(96);

/**
 * The operations whose reach the audit checks: every operation the classification marks as
 * returning plaintext key material or a caller-chosen/known ciphertext. Iterated, never listed.
 */
export function auditedOperations(operations: readonly KmsOperationInfo[] = KMS_OPERATIONS): KmsOperationInfo[] {
  return operations.filter((o) => o.class === 'plaintext' || o.class === 'ciphertext');
}

/** The IAM actions that authorize an operation (two for ReEncrypt: `kms:ReEncryptFrom` and `kms:ReEncryptTo`; the TSK key can be either end). */
export function actionsOf(info: KmsOperationInfo): readonly string[] {
  return info.actions.length > 0 ? info.actions : [info.action];
}

interface HostileContext {
  path: string;
  conditions: Record<string, string>;
}

const hex = (random: (n: number) => Uint8Array, n = 48) => Buffer.from(random(n)).toString('hex');

/** Every condition key and value the policy mentions, by lower-cased key. */
function namedConditionValues(policy: PolicyDocument): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of policy.Statement) {
    for (const block of Object.values(s.Condition ?? {})) {
      for (const [key, value] of Object.entries(block)) {
        const set = out.get(key.toLowerCase()) ?? new Set<string>();
        for (const v of asArray(value)) set.add(String(v));
        out.set(key.toLowerCase(), set);
      }
    }
  }
  return out;
}

/**
 * The attestations a hostile caller can bring to an operation that takes `Recipient`:
 * - a debug-mode enclave (any image, started with `--debug-mode`): every PCR is zero;
 * - another image (its PCR0/ImageSha384 is not the admitted one, and it is not signed with the
 *   admitted certificate, so PCR8 is another value or zero): every other PCR the policy names
 *   (kernel, application, the parent's role, the instance…) the attacker may match, so each takes
 *   every value the policy names for it, and a fresh one.
 */
function attestationContexts(policy: PolicyDocument, random: (n: number) => Uint8Array): HostileContext[] | null {
  const named = namedConditionValues(policy);
  const debug: Record<string, string> = { 'kms:RecipientAttestation:ImageSha384': ZEROS };
  for (let i = 0; i < 32; i++) debug[`kms:RecipientAttestation:PCR${i}`] = ZEROS;
  const contexts: HostileContext[] = [{ path: 'with the attestation of a debug-mode enclave (all-zero PCRs)', conditions: debug }];

  const image = hex(random);
  const free: Array<[string, string[]]> = [];
  for (const [key, values] of named) {
    const m = ATTESTATION_KEY.exec(key);
    if (!m || m[1]!.toLowerCase() === 'imagesha384' || m[2] === '0' || m[2] === '8') continue;
    const candidates = new Set<string>([...values].flatMap((v) => [v, v.toLowerCase()]));
    candidates.add(hex(random));
    free.push([`kms:RecipientAttestation:PCR${Number(m[2])}`, [...candidates]]);
  }
  let combos: Array<Record<string, string>> = [{}];
  for (const [key, candidates] of free) {
    combos = combos.flatMap((c) => candidates.map((v) => ({ ...c, [key]: v })));
    if (combos.length * 2 > MAX_ATTESTATION_CONTEXTS) return null;
  }
  for (const pcr8 of [hex(random), ZEROS]) {
    for (const combo of combos) {
      contexts.push({
        path: 'with the attestation of another enclave image',
        conditions: { 'kms:RecipientAttestation:ImageSha384': image, 'kms:RecipientAttestation:PCR0': image, 'kms:RecipientAttestation:PCR8': pcr8, ...combo },
      });
    }
  }
  return contexts;
}

const ROLE = /^arn:(aws[\w-]*):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/;

/**
 * The callers the audit plays: the key account's root and a principal of it that no statement
 * names, the root and a principal of an account no statement names, and every principal the policy
 * or a grant names (a role also as one of its sessions): the parent may hold any of them, the
 * enclave's own role included.
 */
function hostilePrincipals(keyArn: string, policy: PolicyDocument, extra: readonly string[], random: (n: number) => Uint8Array): string[] {
  const [, partition = 'aws', , account = ''] = /^arn:(aws[\w-]*):kms:([^:]+):(\d{12}):/.exec(keyArn) ?? [];
  const named = new Set<string>();
  for (const s of policy.Statement) {
    if (s.Principal === undefined || s.Principal === '*') continue;
    for (const p of asArray(s.Principal.AWS)) if (p !== '*') named.add(/^\d{12}$/.test(p) ? `arn:${partition}:iam::${p}:root` : p);
  }
  for (const p of extra) named.add(p);
  const accounts = new Set([account, ...[...named].map((p) => /::(\d{12}):/.exec(p)?.[1]).filter((a): a is string => a !== undefined)]);
  let foreign = 1;
  while (accounts.has(String(foreign).padStart(12, '0'))) foreign++;
  const other = String(foreign).padStart(12, '0');
  const probe = `nitro-enclave-key-audit-${hex(random, 4)}`;
  const out = [`arn:${partition}:iam::${account}:root`, `arn:${partition}:sts::${account}:assumed-role/${probe}/probe`, `arn:${partition}:iam::${other}:root`, `arn:${partition}:sts::${other}:assumed-role/${probe}/probe`];
  for (const p of named) {
    out.push(p);
    const role = ROLE.exec(p);
    if (role) out.push(`arn:${role[1]}:sts::${role[2]}:assumed-role/${role[3]}/probe`);
  }
  return [...new Set(out)];
}

const label = (s: PolicyStatement, i: number) => (s.Sid ? `"${s.Sid}"` : `statement #${i}`);

/** Whether a statement is one the audit may count as closing a path: a Deny whose only conditions are on the attestation. */
function countsAsClosing(s: PolicyStatement): boolean {
  if (s.Effect !== 'Deny') return false;
  if (s.Principal !== '*' && (typeof s.Principal !== 'object' || s.Principal === null || Object.keys(s.Principal).some((k) => k !== 'AWS'))) return false;
  // A condition on anything else (encryption context, source VPC, caller account…) is a value the
  // caller may choose or the audit cannot know: such a Deny may not apply, so it closes nothing.
  return Object.values(s.Condition ?? {}).every((block) => Object.keys(block).every((k) => ATTESTATION_KEY.test(k)));
}

/** The Allow statement that lets `ctx` through (directly, or through the account's IAM policies, which may allow anything). */
function allowingStatement(policy: PolicyDocument, ctx: RequestContext): string | null {
  const anyIam: PolicyDocument = { Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };
  for (const [i, s] of policy.Statement.entries()) {
    if (s.Effect !== 'Allow') continue;
    if (evaluatePolicy({ Statement: [s] }, ctx, [anyIam]).effect === 'Allow') return label(s, i);
  }
  return null;
}

/** Statements the evaluator cannot read the way KMS would, so nothing about the policy can be concluded. */
export function unreadableStatements(policy: PolicyDocument): string[] {
  const out: string[] = [];
  for (const [i, s] of policy.Statement.entries()) {
    const extra = ['NotPrincipal', 'NotAction', 'NotResource'].filter((k) => k in s);
    if (extra.length > 0) out.push(`${label(s, i)} uses ${extra.join(', ')}, which the audit does not evaluate`);
    else if (s.Principal === undefined) out.push(`${label(s, i)} has no Principal`);
  }
  return out;
}

/** Inputs of {@link judgeKeyPolicy}. */
export interface JudgeInput {
  keyArn: string;
  policy: PolicyDocument;
  /** The key's grants, as `ListGrants` returned them. */
  grants?: ReadonlyArray<{ GrantId?: string; Name?: string; GranteePrincipal?: string; Operations?: readonly string[] }>;
  /** Also require every principal to be denied replication (multi-Region keys). */
  replication?: boolean;
  operations?: readonly KmsOperationInfo[];
  /** Randomness for the hostile PCR values and probe names. Default node:crypto. */
  random?: (n: number) => Uint8Array;
}

/**
 * Every open path of a key policy and its grants (empty when the Deny statements close them all).
 * Pure: no I/O.
 *
 * @example
 * ```ts
 * const findings = judgeKeyPolicy({ keyArn, policy: parsePolicy(policyJson), grants });
 * if (findings.length) console.error(findings.map((f) => f.text).join('\n'));
 * ```
 */
export function judgeKeyPolicy(input: JudgeInput): KeyAuditFinding[] {
  const { keyArn, policy } = input;
  const random = input.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const operations = input.operations ?? KMS_OPERATIONS;
  const findings: KeyAuditFinding[] = [];
  const add = (f: Omit<KeyAuditFinding, 'text'> & { text?: string }) => findings.push({ ...f, text: f.text ?? `${f.action} is open ${f.path} for ${f.principal}` });

  for (const text of unreadableStatements(policy)) add({ action: '*', path: 'through the policy', principal: '*', text: `the key policy cannot be audited: ${text}` });
  if (findings.length > 0) return findings;

  const closing: PolicyDocument = { Statement: policy.Statement.filter(countsAsClosing) };
  const grantees = (input.grants ?? []).map((g) => g.GranteePrincipal).filter((p): p is string => typeof p === 'string' && p.startsWith('arn:'));
  const principals = hostilePrincipals(keyArn, policy, grantees, random);
  const withAttestation = attestationContexts(policy, random);
  const none: HostileContext = { path: 'without attestation', conditions: {} };
  const contextsOf = (info: KmsOperationInfo): HostileContext[] | null => (info.takesRecipient ? (withAttestation ? [none, ...withAttestation] : null) : [none]);

  // The Deny statements that can apply to an action, and whether they all name every principal ("*"):
  // then who calls does not change their verdict, and one caller stands for all (the audit runs while
  // the first Decrypt is in flight, on the enclave's one thread).
  const deniesOf = new Map<string, { policy: PolicyDocument; anyPrincipal: boolean; verdicts: Map<HostileContext, boolean> }>();
  const denies = (action: string) => {
    let entry = deniesOf.get(action);
    if (!entry) {
      const statements = closing.Statement.filter((s) => statementApplies(s, { action, resource: keyArn }));
      const anyPrincipal = statements.every((s) => s.Principal === '*' || (typeof s.Principal === 'object' && asArray(s.Principal.AWS).includes('*')));
      entry = { policy: { Statement: statements }, anyPrincipal, verdicts: new Map() };
      deniesOf.set(action, entry);
    }
    return entry;
  };

  /** The first context in which `principal` gets `action` past every Deny, or null when all are denied. */
  const openPath = (principal: string, action: string, contexts: HostileContext[]): HostileContext | null => {
    const d = denies(action);
    for (const c of contexts) {
      let denied = d.anyPrincipal ? d.verdicts.get(c) : undefined;
      if (denied === undefined) {
        const decision = evaluatePolicy(d.policy, { principalArn: principal, action, resource: keyArn, conditions: c.conditions });
        denied = decision.effect === 'Deny' && decision.explicit;
        if (d.anyPrincipal) d.verdicts.set(c, denied);
      }
      if (!denied) return c;
    }
    return null;
  };

  const checked = auditedOperations(operations);
  if (input.replication) {
    const replicate = operations.find((o) => o.operation === 'ReplicateKey');
    if (!replicate) add({ action: 'kms:ReplicateKey', path: 'through replication', principal: '*', text: 'the operation classification has no ReplicateKey, so replication cannot be audited' });
    else checked.push(replicate);
  }

  // Statements with service or federated principals are outside what the evaluator models: an
  // Allow of one on an audited operation is an open path unless the audit can see it is closed.
  for (const [i, s] of policy.Statement.entries()) {
    if (s.Effect !== 'Allow' || s.Principal === '*' || typeof s.Principal !== 'object') continue;
    const others = Object.entries(s.Principal).filter(([k]) => k !== 'AWS');
    if (others.length === 0) continue;
    for (const info of checked) {
      for (const action of actionsOf(info)) {
        if (!statementApplies(s, { action, resource: keyArn })) continue;
        const who = others.flatMap(([, v]) => asArray(v as string | string[])).join(', ');
        add({ action, path: 'to a service or federated principal', principal: who, text: `${action} is allowed to ${who} via ${label(s, i)}, and the audit cannot tell whether the Deny statements reach that principal` });
      }
    }
  }

  for (const info of checked) {
    const contexts = contextsOf(info);
    for (const action of actionsOf(info)) {
      if (!contexts) {
        add({ action, path: 'with an attestation', principal: '*', text: `${action} cannot be audited: the key policy names more attestation values than the audit enumerates (${MAX_ATTESTATION_CONTEXTS} contexts)` });
        continue;
      }
      // One finding per action and path (no attestation, debug mode, another image): the first
      // caller an Allow lets through, else the first that no Deny stops.
      for (const path of [...new Set(contexts.map((c) => c.path))]) {
        const group = contexts.filter((c) => c.path === path);
        let notDenied: { principal: string } | undefined;
        let allowed: { principal: string; via: string } | undefined;
        for (const principal of principals) {
          const open = openPath(principal, action, group);
          if (!open) continue;
          const via = allowingStatement(policy, { principalArn: principal, action, resource: keyArn, conditions: open.conditions });
          if (via) {
            allowed = { principal, via };
            break;
          }
          notDenied ??= { principal };
        }
        if (allowed) add({ action, path, principal: allowed.principal, text: `${action} is allowed ${path} via ${allowed.via} (for ${allowed.principal})` });
        else if (notDenied) {
          add({
            action,
            path,
            principal: notDenied.principal,
            text: `${action} is not denied ${path} for ${notDenied.principal}: no statement allows it today, but only an explicit Deny closes a path the enclave cannot see (IAM policies, grants); the key policy needs a Deny statement for ${action}`,
          });
        }
      }
    }
  }

  for (const grant of input.grants ?? []) {
    const id = `grant ${grant.GrantId ?? '(no id)'}${grant.Name ? ` ("${grant.Name}")` : ''}`;
    const grantee = grant.GranteePrincipal ?? '';
    for (const name of grant.Operations ?? []) {
      const info = operations.find((o) => o.operation === name);
      if (!info) {
        add({ action: `kms:${name}`, path: `through ${id}`, principal: grantee, text: `${id} carries ${name}, an operation the audit does not know` });
        continue;
      }
      if (!checked.includes(info)) continue;
      if (!grantee.startsWith('arn:')) {
        add({ action: info.action, path: `through ${id}`, principal: grantee, text: `${id} gives ${info.action} to ${grantee || '(no grantee)'}, a principal the audit cannot evaluate the Deny statements for` });
        continue;
      }
      const contexts = contextsOf(info) ?? [none];
      for (const action of actionsOf(info)) {
        const open = openPath(grantee, action, contexts);
        if (open) add({ action, path: `${open.path} through ${id}`, principal: grantee, text: `${id} gives ${action} to ${grantee} ${open.path}, and no Deny statement of the key policy closes it` });
      }
    }
  }
  return findings;
}
