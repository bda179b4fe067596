import { asArray, evaluatePolicy, parsePolicy, type PolicyDocument } from '../internal/iam-policy.js';
import { kmsOperation } from '../internal/kms-operations.js';
import type { EnclaveImage } from './key-policy.js';

/**
 * The members of a CloudTrail record the audit reads: one element of a trail
 * file's `Records`, or the parsed `CloudTrailEvent` of a LookupEvents result.
 */
export interface TrailRecord {
  eventID?: string;
  requestID?: string;
  eventTime: string;
  eventName: string;
  eventSource?: string;
  userIdentity?: { type?: string; arn?: string; accountId?: string } | null;
  errorCode?: string;
  errorMessage?: string;
  requestParameters?: Record<string, unknown> | null;
  additionalEventData?: { recipient?: Record<string, string> } | null;
  resources?: Array<{ ARN?: string }> | null;
}

/** What the audit flags. Any finding makes `nitro-enclave audit` exit non-zero. */
export type AuditFindingCode =
  /** A call that returns key material, or mints a blob of a key its caller knows, succeeded without an attestation. */
  | 'UNATTESTED_RELEASE'
  /** The key policy was replaced (PutKeyPolicy). */
  | 'POLICY_CHANGED'
  /** Someone was granted use of the key (CreateGrant). */
  | 'GRANT_CREATED'
  /** Another call that moves authority or key material (import, replication, alias re-pointing, tags, …) succeeded. */
  | 'AUTHORITY_CHANGED'
  /** An attested call by an image the current key policy does not admit, after that policy took effect. */
  | 'IMAGE_NOT_ADMITTED'
  /** A successful call of an operation the KMS model this library knows does not have: unclassified, so flagged. */
  | 'UNKNOWN_OPERATION';

/** One finding: the event it comes from and why it matters. */
export interface AuditFinding {
  code: AuditFindingCode;
  eventID: string;
  requestID?: string;
  eventTime: string;
  eventName: string;
  principal: string;
  message: string;
}

/** The attested use of one image (by PCR0, or PCR8 when it has no PCR0) in the window. */
export interface ImageUse {
  image: EnclaveImage;
  /** Whether the current key policy admits it. */
  admitted: boolean;
  /** Successful attested calls (the enclave received key material). */
  releases: number;
  /** Refused attested calls. */
  denied: number;
  /** The last successful attested call, if any. */
  lastRelease?: string;
  /** The last attested call, successful or not. */
  lastSeen: string;
  principals: string[];
}

/** A call on the key that failed (refused, or invalid): every failed call but a DryRun's "would have succeeded". */
export interface DeniedAttempt {
  eventID: string;
  eventTime: string;
  eventName: string;
  principal: string;
  errorCode: string;
  errorMessage?: string;
  /** PCR0 of the attestation the call carried, if any. */
  pcr0?: string;
}

/** A successful call that changed authority over the key (policy, grants, aliases, material, …). */
export interface KeyChange {
  eventID: string;
  requestID?: string;
  eventTime: string;
  eventName: string;
  principal: string;
  /** For PutKeyPolicy: the images the new policy admits, and whether it still denies a Decrypt without attestation. */
  policy?: { images: EnclaveImage[]; deniesUnattestedDecrypt: boolean } | { unreadable: string };
}

/** The result of {@link auditKeyTrail}. */
export interface AuditReport {
  keyArn: string;
  since: string;
  until: string;
  /** Records on this key in the window. */
  events: number;
  /** The images the current key policy admits. */
  admitted: EnclaveImage[];
  images: ImageUse[];
  denied: DeniedAttempt[];
  changes: KeyChange[];
  /** Findings that were acknowledged (by event or request id) and so do not count. */
  acknowledged: AuditFinding[];
  findings: AuditFinding[];
}

/** Options of {@link auditKeyTrail}. */
export interface AuditOptions {
  /** The key's ARN: only records naming it as a resource count. */
  keyArn: string;
  /** The key's current policy: which images it admits. */
  policy: PolicyDocument;
  since: Date;
  until: Date;
  /** Event or request ids whose findings are known and accepted (e.g. your own rollout's PutKeyPolicy). */
  acknowledge?: readonly string[];
}

const CONDITION_PCR: Record<string, keyof EnclaveImage> = {
  'kms:recipientattestation:imagesha384': 'pcr0',
  'kms:recipientattestation:pcr0': 'pcr0',
  'kms:recipientattestation:pcr1': 'pcr1',
  'kms:recipientattestation:pcr2': 'pcr2',
  'kms:recipientattestation:pcr8': 'pcr8',
};

/**
 * The images a key policy admits: one per Allow statement of `kms:Decrypt`
 * (or `kms:*`) conditioned on attestation with `StringEquals` or
 * `StringEqualsIgnoreCase` (a list of values admits each; several keys must
 * all match). Statements without an attestation condition admit no image.
 *
 * @example
 * ```ts
 * admittedImages(buildKeyPolicy({ accountId, enclaveRole, pcr0 })); // [{ pcr0 }]
 * ```
 */
export function admittedImages(policy: PolicyDocument): EnclaveImage[] {
  const out: EnclaveImage[] = [];
  for (const s of policy.Statement) {
    if (s.Effect !== 'Allow' || !asArray(s.Action).some((a) => /^(kms:\*|kms:decrypt|\*)$/i.test(a))) continue;
    let images: EnclaveImage[] = [{}];
    for (const [operator, block] of Object.entries(s.Condition ?? {})) {
      if (!/^StringEquals(IgnoreCase)?$/.test(operator)) continue;
      for (const [key, values] of Object.entries(block)) {
        const pcr = CONDITION_PCR[key.toLowerCase()];
        if (!pcr) continue;
        images = images.flatMap((image) => asArray(values as string | string[]).map((v) => ({ ...image, [pcr]: String(v).toLowerCase() })));
      }
    }
    for (const image of images) if (Object.keys(image).length > 0 && !out.some((o) => sameImage(o, image))) out.push(image);
  }
  return out;
}

const sameImage = (a: EnclaveImage, b: EnclaveImage) => a.pcr0 === b.pcr0 && a.pcr1 === b.pcr1 && a.pcr2 === b.pcr2 && a.pcr8 === b.pcr8;

/** A PCR as CloudTrail wrote it: base64 in real trails, hex in some documentation examples. `undefined` when it is neither. */
function pcrHex(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (/^[0-9a-fA-F]{96}$/.test(value)) return value.toLowerCase();
  if (/^[A-Za-z0-9+/]{64}$/.test(value)) return Buffer.from(value, 'base64').toString('hex');
  return undefined;
}

/**
 * The measurements of an attested call from its CloudTrail record's
 * `additionalEventData.recipient` (PCRs in base64 or hex), or `null` when the
 * call carried no attestation.
 *
 * @example
 * ```ts
 * observedImage(record)?.pcr0; // '9f86d0…' (hex)
 * ```
 */
export function observedImage(record: TrailRecord): EnclaveImage | null {
  const r = record.additionalEventData?.recipient;
  if (!r) return null;
  const image: EnclaveImage = {};
  const fields: Array<[keyof EnclaveImage, string]> = [
    ['pcr0', 'attestationDocumentEnclaveImageDigest'],
    ['pcr1', 'attestationDocumentEnclavePCR1'],
    ['pcr2', 'attestationDocumentEnclavePCR2'],
    ['pcr8', 'attestationDocumentEnclavePCR8'],
  ];
  for (const [pcr, field] of fields) {
    const hex = pcrHex(r[field]);
    if (hex !== undefined) image[pcr] = hex;
  }
  return image;
}

/**
 * Whether an admitted image covers an observed one: every PCR the admitted image names is equal.
 *
 * @example
 * ```ts
 * const seen = observedImage(record);
 * const ok = seen !== null && admittedImages(policy).some((image) => imageAdmits(image, seen));
 * ```
 */
export function imageAdmits(admitted: EnclaveImage, observed: EnclaveImage): boolean {
  const keys = Object.keys(admitted) as Array<keyof EnclaveImage>;
  return keys.length > 0 && keys.every((k) => observed[k] !== undefined && admitted[k] === observed[k]);
}

/**
 * A short label for an image: `PCR0 1234abcd…89ef` (and the other PCRs it names).
 *
 * @example
 * ```ts
 * imageLabel({ pcr0 }); // 'PCR0 451b6f1c393e…81b40a'
 * ```
 */
export function imageLabel(image: EnclaveImage): string {
  const short = (h: string) => `${h.slice(0, 12)}…${h.slice(-6)}`;
  const parts: string[] = [];
  if (image.pcr0) parts.push(`PCR0 ${short(image.pcr0)}`);
  if (image.pcr1) parts.push(`PCR1 ${short(image.pcr1)}`);
  if (image.pcr2) parts.push(`PCR2 ${short(image.pcr2)}`);
  if (image.pcr8) parts.push(`PCR8 ${short(image.pcr8)}`);
  return parts.join(' + ') || '(no PCRs)';
}

/**
 * How an observed image is named in reports: its PCR0, and its PCR8 when the EIF was signed (PCR8 not all zeros).
 *
 * @example
 * ```ts
 * observedLabel(observedImage(record)!); // 'PCR0 451b6f1c393e…81b40a'
 * ```
 */
export function observedLabel(image: EnclaveImage): string {
  return imageLabel({ ...(image.pcr0 ? { pcr0: image.pcr0 } : {}), ...(image.pcr8 && !/^0+$/.test(image.pcr8) ? { pcr8: image.pcr8 } : {}) });
}

/** Whether a policy denies a Decrypt without attestation explicitly, for any principal (of the key's account or not). */
function deniesUnattestedDecrypt(policy: PolicyDocument, keyArn: string): boolean {
  const account = /^arn:aws[\w-]*:kms:[^:]*:(\d{12}):/.exec(keyArn)?.[1] ?? '000000000000';
  const probes = [`arn:aws:iam::${account}:user/any-user`, `arn:aws:sts::${account}:assumed-role/AnyRole/any-session`, `arn:aws:iam::${account}:root`];
  return probes.every((principalArn) => {
    const d = evaluatePolicy(policy, { principalArn, action: 'kms:Decrypt', resource: keyArn, conditions: {} });
    return d.effect === 'Deny' && d.explicit;
  });
}

const principalOf = (r: TrailRecord) => r.userIdentity?.arn ?? r.userIdentity?.type ?? 'unknown';

/**
 * Reads the trail of one KMS key (the TSK key) and tells what happened to it
 * between `since` and `until`: every attested use by image, every refused
 * call, every change of authority (policy, grants, …), and the findings an
 * operator must look at:
 *
 * - `UNATTESTED_RELEASE`: an operation that returns key material or mints a
 *   ciphertext of a key its caller knows (the `plaintext` and `ciphertext`
 *   classes of the KMS operation table) succeeded without a recipient.
 * - `POLICY_CHANGED`, `GRANT_CREATED`, `AUTHORITY_CHANGED`: a successful
 *   operation of the `authority` class.
 * - `IMAGE_NOT_ADMITTED`: an attested call (released or refused) by an image
 *   the current policy does not admit, after the current policy took effect
 *   (its last PutKeyPolicy in the window, else the window's start).
 * - `UNKNOWN_OPERATION`: a successful operation the table does not classify.
 *
 * Pure: it reads the records and the policy it is given (fetch them with
 * CloudTrail `LookupEvents` and KMS `GetKeyPolicy`; `nitro-enclave audit`
 * does).
 *
 * @example
 * ```ts
 * const report = auditKeyTrail(records, { keyArn, policy, since: new Date(Date.now() - 86_400_000), until: new Date() });
 * if (report.findings.length) process.exitCode = 4;
 * ```
 */
export function auditKeyTrail(records: readonly TrailRecord[], options: AuditOptions): AuditReport {
  const { keyArn, policy, since, until } = options;
  if (typeof keyArn !== 'string' || !/^arn:aws[\w-]*:kms:[^:]+:\d{12}:key\/.+$/.test(keyArn)) throw new TypeError('keyArn must be a KMS key ARN');
  if (!(since instanceof Date) || !(until instanceof Date) || !(since.getTime() <= until.getTime())) throw new TypeError('since and until must be Dates, since first');
  const ack = new Set(options.acknowledge ?? []);
  const admitted = admittedImages(policy);
  const onKey = records
    .filter((r) => (r.eventSource ?? 'kms.amazonaws.com') === 'kms.amazonaws.com' && (r.resources ?? []).some((res) => res.ARN === keyArn))
    .filter((r) => {
      const t = Date.parse(r.eventTime);
      return t >= since.getTime() && t <= until.getTime();
    })
    .sort((a, b) => Date.parse(a.eventTime) - Date.parse(b.eventTime));
  const lastPut = onKey.filter((r) => r.eventName === 'PutKeyPolicy' && !r.errorCode).at(-1);
  const policyFrom = lastPut ? Date.parse(lastPut.eventTime) : since.getTime();

  const images = new Map<string, ImageUse>();
  const denied: DeniedAttempt[] = [];
  const changes: KeyChange[] = [];
  const all: AuditFinding[] = [];
  const flag = (r: TrailRecord, code: AuditFindingCode, message: string) =>
    all.push({ code, eventID: r.eventID ?? '', ...(r.requestID ? { requestID: r.requestID } : {}), eventTime: r.eventTime, eventName: r.eventName, principal: principalOf(r), message });

  for (const r of onKey) {
    const op = kmsOperation(r.eventName);
    const image = observedImage(r);
    const ok = !r.errorCode;
    if (image) {
      const id = image.pcr0 ?? `pcr8:${image.pcr8 ?? ''}`;
      const use = images.get(id) ?? { image, admitted: admitted.some((a) => imageAdmits(a, image)), releases: 0, denied: 0, lastSeen: r.eventTime, principals: [] };
      if (ok) {
        use.releases++;
        use.lastRelease = r.eventTime;
      } else use.denied++;
      use.lastSeen = r.eventTime;
      if (!use.principals.includes(principalOf(r))) use.principals.push(principalOf(r));
      images.set(id, use);
      if (!use.admitted && Date.parse(r.eventTime) >= policyFrom) {
        flag(
          r,
          'IMAGE_NOT_ADMITTED',
          ok
            ? `${r.eventName} released key material to ${observedLabel(image)}, which the current key policy does not admit`
            : `${observedLabel(image)}, which the current key policy does not admit, still calls ${r.eventName} (refused: ${r.errorCode}): a replica of a removed image, or an image nobody admitted`,
        );
      }
    }
    if (!ok) {
      // DryRunOperationException means the call would have succeeded (check-policy's probes): not a refusal.
      if (r.errorCode !== 'DryRunOperationException') {
        denied.push({ eventID: r.eventID ?? '', eventTime: r.eventTime, eventName: r.eventName, principal: principalOf(r), errorCode: r.errorCode!, ...(r.errorMessage ? { errorMessage: r.errorMessage } : {}), ...(image?.pcr0 ? { pcr0: image.pcr0 } : {}) });
      }
      continue;
    }
    if (!op) {
      flag(r, 'UNKNOWN_OPERATION', `${r.eventName} is not in the KMS operation table this audit knows: classify it before trusting this key`);
      continue;
    }
    if ((op.class === 'plaintext' || op.class === 'ciphertext') && !image) {
      flag(r, 'UNATTESTED_RELEASE', `${r.eventName} succeeded without an attestation: ${op.class === 'plaintext' ? 'its caller received key material' : 'its caller holds a ciphertext under the key of a plaintext it knows'}`);
      continue;
    }
    if (op.class !== 'authority') continue;
    const change: KeyChange = { eventID: r.eventID ?? '', ...(r.requestID ? { requestID: r.requestID } : {}), eventTime: r.eventTime, eventName: r.eventName, principal: principalOf(r) };
    if (r.eventName === 'PutKeyPolicy') {
      const text = r.requestParameters?.policy;
      try {
        const put = parsePolicy(String(text));
        change.policy = { images: admittedImages(put), deniesUnattestedDecrypt: deniesUnattestedDecrypt(put, keyArn) };
      } catch (err) {
        change.policy = { unreadable: (err as Error).message };
      }
      const weak = 'deniesUnattestedDecrypt' in change.policy && !change.policy.deniesUnattestedDecrypt ? '; the new policy does NOT deny a Decrypt without attestation' : '';
      flag(r, 'POLICY_CHANGED', `the key policy was replaced${weak}`);
    } else if (r.eventName === 'CreateGrant') {
      const p = r.requestParameters ?? {};
      flag(r, 'GRANT_CREATED', `a grant gives ${String(p.granteePrincipal ?? 'someone')} ${asArray(p.operations as string[] | undefined).join(', ') || 'operations'} on the key`);
    } else flag(r, 'AUTHORITY_CHANGED', `${r.eventName} succeeded: ${op.why}`);
    changes.push(change);
  }
  const isAck = (f: AuditFinding) => ack.has(f.eventID) || (f.requestID !== undefined && ack.has(f.requestID));
  return {
    keyArn,
    since: since.toISOString(),
    until: until.toISOString(),
    events: onKey.length,
    admitted,
    images: [...images.values()],
    denied,
    changes,
    acknowledged: all.filter(isAck),
    findings: all.filter((f) => !isAck(f)),
  };
}
