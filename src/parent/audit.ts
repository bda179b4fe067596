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
  /** `AwsApiCall` for a request; `AwsServiceEvent` for what KMS does by itself (RotateKey, DeleteKey, …). */
  eventType?: string;
  /** A caller's identity, or for a service event `{ accountId, invokedBy }`. */
  userIdentity?: { type?: string; arn?: string; accountId?: string; invokedBy?: string } | null;
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
  /**
   * An attested call by an image no trusted policy admits: a release the key policy in force then
   * did not admit, or that only an unacknowledged PutKeyPolicy admitted and the current policy does
   * not; or a refused call by an image the current policy does not admit, after it took effect.
   */
  | 'IMAGE_NOT_ADMITTED'
  /** Key material went to a debug-mode enclave (PCR0 all zeros): whoever started it can read its memory. */
  | 'DEBUG_ENCLAVE_RELEASE'
  /** An attested call succeeded for something that is not an enclave image (a NitroTPM: the instance itself), or whose record names no PCR0. */
  | 'NON_ENCLAVE_RELEASE'
  /** The key was scheduled for deletion, deleted, or lost its (imported) material. */
  | 'KEY_DELETION'
  /** The trail held more events than the audit may read (`maxEvents`): what it did not read is not judged. */
  | 'TRAIL_TOO_LARGE'
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

/**
 * The attested use of one image in the window: one entry per distinct set of
 * measurements (PCR0, PCR1, PCR2 and PCR8), so the same EIF signed with two
 * certificates is two entries, each attributed to the PCR8 image it matches.
 */
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
  policy?: { images: EnclaveImage[]; deniesUnattestedDecrypt: boolean; admitsAnyEnclave: boolean; admitsDebugEnclave: boolean } | { unreadable: string };
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
  /**
   * Event or request ids whose findings are known and accepted (e.g. your own rollout's
   * PutKeyPolicy). An acknowledged PutKeyPolicy is also trusted as the policy in force until the
   * next one: releases it admitted are not findings, even to images the current policy dropped.
   */
  acknowledge?: readonly string[];
  /**
   * Set when the trail was not read to its start (too many events): the oldest time read. Events
   * before it are unknown, so the report carries a `TRAIL_TOO_LARGE` finding, which no
   * acknowledgement hides.
   */
  incomplete?: { readEvents: number; oldestRead: string };
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

const accountOfKey = (keyArn: string) => /^arn:aws[\w-]*:kms:[^:]*:(\d{12}):/.exec(keyArn)?.[1] ?? '000000000000';

/** Whether a policy denies a Decrypt without attestation explicitly, for any principal (of the key's account or not). */
function deniesUnattestedDecrypt(policy: PolicyDocument, keyArn: string): boolean {
  const account = accountOfKey(keyArn);
  const probes = [`arn:aws:iam::${account}:user/any-user`, `arn:aws:sts::${account}:assumed-role/AnyRole/any-session`, `arn:aws:iam::${account}:root`];
  return probes.every((principalArn) => {
    const d = evaluatePolicy(policy, { principalArn, action: 'kms:Decrypt', resource: keyArn, conditions: {} });
    return d.effect === 'Deny' && d.explicit;
  });
}

/** Every principal a policy could let in: the ones its statements name (a role also as one of its sessions), and generic ones of the key's account. */
function probePrincipals(policy: PolicyDocument, keyArn: string): string[] {
  const account = accountOfKey(keyArn);
  const out = new Set([`arn:aws:iam::${account}:user/any-user`, `arn:aws:sts::${account}:assumed-role/AnyRole/any-session`, `arn:aws:iam::${account}:root`]);
  for (const s of policy.Statement) {
    if (s.Effect !== 'Allow' || !s.Principal || s.Principal === '*') continue;
    for (const p of asArray(s.Principal.AWS)) {
      if (p === '*') continue;
      out.add(p);
      const role = /^arn:(aws[\w-]*):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(p);
      if (role) out.add(`arn:${role[1]}:sts::${role[2]}:assumed-role/${role[3]}/i-0123456789abcdef0`);
    }
  }
  return [...out];
}

/**
 * Whether a policy lets an attested Decrypt through for an enclave whose
 * measurements it does not name (a probe image no statement can name), or
 * for a debug-mode enclave (all PCRs zero), for any principal it names,
 * assuming that principal's IAM policies allow kms:* (the worst case the key
 * policy must hold against).
 */
function admitsUnnamed(policy: PolicyDocument, keyArn: string): { any: boolean; debug: boolean } {
  const iamAll: PolicyDocument = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:*', Resource: '*' }] };
  const attested = (fill: string): Record<string, string> => {
    const conditions: Record<string, string> = { 'kms:RecipientAttestation:ImageSha384': fill };
    for (const i of [0, 1, 2, 3, 4, 8]) conditions[`kms:RecipientAttestation:PCR${i}`] = fill;
    return conditions;
  };
  const allowed = (conditions: Record<string, string>) =>
    probePrincipals(policy, keyArn).some((principalArn) => evaluatePolicy(policy, { principalArn, action: 'kms:Decrypt', resource: keyArn, conditions }, [iamAll]).effect === 'Allow');
  // No real measurement is this value: only a statement that does not pin the image admits it.
  return { any: allowed(attested('5a'.repeat(48))), debug: allowed(attested('0'.repeat(96))) };
}

/** How a PutKeyPolicy's new policy reads: the images it admits and the doors it leaves open. */
function judgePolicy(text: unknown, keyArn: string): NonNullable<KeyChange['policy']> & { document?: PolicyDocument } {
  try {
    const put = parsePolicy(String(text));
    const open = admitsUnnamed(put, keyArn);
    return { images: admittedImages(put), deniesUnattestedDecrypt: deniesUnattestedDecrypt(put, keyArn), admitsAnyEnclave: open.any, admitsDebugEnclave: open.debug, document: put };
  } catch (err) {
    return { unreadable: (err as Error).message };
  }
}

const DEFAULT_KEY_POLICY = (account: string): PolicyDocument => ({ Version: '2012-10-17', Statement: [{ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' }] });

const principalOf = (r: TrailRecord) => r.userIdentity?.arn ?? r.userIdentity?.invokedBy ?? r.userIdentity?.type ?? 'unknown';

/**
 * What KMS does by itself and logs as `AwsServiceEvent`s (AWS KMS Developer
 * Guide, "Logging AWS KMS API calls with AWS CloudTrail": DeleteExpiredKeyMaterial,
 * DeleteKey, SynchronizeMultiRegionKey, RotateKey). These are not API
 * operations, so the operation table does not hold them.
 */
const SERVICE_EVENTS: Record<string, { finding?: AuditFindingCode; why: string }> = {
  RotateKey: { why: 'KMS made new key material (automatic or on-demand rotation); old blobs still open. Reveals nothing.' },
  SynchronizeMultiRegionKey: { why: 'KMS copied the shared properties of a multi-Region key to its replicas; the replication itself is ReplicateKey.' },
  DeleteKey: { finding: 'KEY_DELETION', why: 'KMS deleted the key at the end of its deletion waiting period: every TSK blob under it is lost' },
  DeleteExpiredKeyMaterial: { finding: 'KEY_DELETION', why: 'KMS deleted the imported key material at its expiration: the key cannot open a TSK blob until it is imported again' },
};

// An AWS service calling the API for someone (userIdentity.type AWSService, invokedBy ec2.amazonaws.com, …) is an AwsApiCall, judged as any call.
const isServiceEvent = (r: TrailRecord) =>
  r.eventType === 'AwsServiceEvent' || (r.eventType === undefined && r.userIdentity?.invokedBy !== undefined && r.userIdentity.arn === undefined && Object.hasOwn(SERVICE_EVENTS, r.eventName));

const isNitroTpm = (r: TrailRecord) => Object.keys(r.additionalEventData?.recipient ?? {}).some((k) => /^attestationDocumentNitroTPM/i.test(k));

const imageKey = (i: EnclaveImage) => [i.pcr0, i.pcr1, i.pcr2, i.pcr8].map((v) => v ?? '-').join('/');

/**
 * Reads the trail of one KMS key (the TSK key) and tells what happened to it
 * between `since` and `until`: every attested use by image, every refused
 * call, every change of authority (policy, grants, …), and the findings an
 * operator must look at:
 *
 * - `UNATTESTED_RELEASE`: an operation that returns key material or mints a
 *   ciphertext of a key its caller knows (the `plaintext` and `ciphertext`
 *   classes of the KMS operation table) succeeded without a recipient.
 * - `NON_ENCLAVE_RELEASE`: such an operation succeeded with a recipient that
 *   is not an enclave image: a NitroTPM (the parent instance holds that TPM)
 *   or a record without PCR0.
 * - `DEBUG_ENCLAVE_RELEASE`: it succeeded for a debug-mode enclave (PCR0 all zeros).
 * - `IMAGE_NOT_ADMITTED`: each release is judged against the key policy in
 *   force at that moment, rebuilt from the window's CreateKey and
 *   PutKeyPolicy texts (CreateKey's policy, or KMS's default, is trusted). A
 *   release that policy did not admit is a finding. A policy put by an
 *   unacknowledged PutKeyPolicy is not trusted, and neither is the unknown
 *   policy before the window's first PutKeyPolicy (or after an unreadable
 *   one): then the release must be admitted by the current policy. So an
 *   administrator who admits their own image, takes a release and restores
 *   the policy is flagged, while a rollout's own acknowledged change is not.
 *   Refused attested calls are findings when the current policy does not
 *   admit the image, after it took effect (a replica of a removed image).
 * - `POLICY_CHANGED` (saying when the new policy no longer denies an
 *   unattested Decrypt, admits an enclave image it does not name, or admits
 *   debug-mode enclaves), `GRANT_CREATED`, `AUTHORITY_CHANGED`: a successful
 *   operation of the `authority` class.
 * - `KEY_DELETION`: ScheduleKeyDeletion, and KMS's own DeleteKey and
 *   DeleteExpiredKeyMaterial events. KMS's RotateKey and
 *   SynchronizeMultiRegionKey events are not findings.
 * - `UNKNOWN_OPERATION`: a successful operation the table does not classify.
 * - `TRAIL_TOO_LARGE`: `incomplete` was given; never acknowledged.
 *
 * `records` oldest first, as a trail file holds them (LookupEvents pages are
 * newest first: reverse them); events of the same second keep that order.
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
  const acked = (r: TrailRecord) => (r.eventID !== undefined && ack.has(r.eventID)) || (r.requestID !== undefined && ack.has(r.requestID));

  const images = new Map<string, ImageUse>();
  const denied: DeniedAttempt[] = [];
  const changes: KeyChange[] = [];
  const all: AuditFinding[] = [];
  const flag = (r: TrailRecord, code: AuditFindingCode, message: string) =>
    all.push({ code, eventID: r.eventID ?? '', ...(r.requestID ? { requestID: r.requestID } : {}), eventTime: r.eventTime, eventName: r.eventName, principal: principalOf(r), message });
  // The policy in force, as the trail shows it: unknown until the window's first PutKeyPolicy.
  let inForce: { document: PolicyDocument; eventID: string; trusted: boolean } | null = null;

  for (const r of onKey) {
    const ok = !r.errorCode;
    if (isServiceEvent(r)) {
      const service = SERVICE_EVENTS[r.eventName];
      if (!ok) continue;
      if (!service) flag(r, 'UNKNOWN_OPERATION', `KMS's own ${r.eventName} event is not one this audit knows: classify it before trusting this key`);
      else if (service.finding) flag(r, service.finding, `${r.eventName} (by KMS): ${service.why}`);
      continue;
    }
    const op = kmsOperation(r.eventName);
    const attested = r.additionalEventData?.recipient ? r.additionalEventData.recipient : null;
    const image = attested && !isNitroTpm(r) ? observedImage(r) : null;
    const enclave = image?.pcr0 !== undefined ? image : null;
    if (enclave) {
      const id = imageKey(enclave);
      const use = images.get(id) ?? { image: enclave, admitted: admitted.some((a) => imageAdmits(a, enclave)), releases: 0, denied: 0, lastSeen: r.eventTime, principals: [] };
      if (ok) {
        use.releases++;
        use.lastRelease = r.eventTime;
      } else use.denied++;
      use.lastSeen = r.eventTime;
      if (!use.principals.includes(principalOf(r))) use.principals.push(principalOf(r));
      images.set(id, use);
      if (ok) {
        const label = observedLabel(enclave);
        if (/^0+$/.test(enclave.pcr0!)) flag(r, 'DEBUG_ENCLAVE_RELEASE', `${r.eventName} released key material to a debug-mode enclave (PCR0 all zeros): whoever started it can read its memory`);
        const byForce = inForce ? admittedImages(inForce.document).some((a) => imageAdmits(a, enclave)) : undefined;
        if (byForce === false) flag(r, 'IMAGE_NOT_ADMITTED', `${r.eventName} released key material to ${label}, which the key policy in force then (event ${inForce!.eventID}) did not name`);
        else if (!inForce?.trusted && !use.admitted) {
          flag(
            r,
            'IMAGE_NOT_ADMITTED',
            inForce
              ? `${r.eventName} released key material to ${label}, admitted only by the policy of PutKeyPolicy event ${inForce.eventID} (not acknowledged), which the current key policy does not admit`
              : `${r.eventName} released key material to ${label}, which the current key policy does not admit (the policy in force then is unknown: it predates the window; widen --since to the PutKeyPolicy that admitted it, or acknowledge this event)`,
          );
        }
      } else if (!use.admitted && Date.parse(r.eventTime) >= policyFrom) {
        flag(r, 'IMAGE_NOT_ADMITTED', `${observedLabel(enclave)}, which the current key policy does not admit, still calls ${r.eventName} (refused: ${r.errorCode}): a replica of a removed image, or an image nobody admitted`);
      }
    }
    if (!ok) {
      // DryRunOperationException means the call would have succeeded (check-policy's probes): not a refusal.
      if (r.errorCode !== 'DryRunOperationException') {
        denied.push({ eventID: r.eventID ?? '', eventTime: r.eventTime, eventName: r.eventName, principal: principalOf(r), errorCode: r.errorCode!, ...(r.errorMessage ? { errorMessage: r.errorMessage } : {}), ...(enclave ? { pcr0: enclave.pcr0 } : {}) });
      }
      continue;
    }
    if (!op) {
      flag(r, 'UNKNOWN_OPERATION', `${r.eventName} is not in the KMS operation table this audit knows: classify it before trusting this key`);
      continue;
    }
    if (op.class === 'plaintext' || op.class === 'ciphertext') {
      if (!attested) flag(r, 'UNATTESTED_RELEASE', `${r.eventName} succeeded without an attestation: ${op.class === 'plaintext' ? 'its caller received key material' : 'its caller holds a ciphertext under the key of a plaintext it knows'}`);
      else if (!enclave) {
        const module = attested.attestationDocumentModuleId ? ` (module ${attested.attestationDocumentModuleId})` : '';
        flag(
          r,
          'NON_ENCLAVE_RELEASE',
          isNitroTpm(r)
            ? `${r.eventName} released key material to a NitroTPM${module}, not an enclave: the instance that holds the TPM (the parent) can read it`
            : `${r.eventName} succeeded with an attestation whose record names no enclave image (PCR0)${module}: not a release this key policy should allow`,
        );
      }
      continue;
    }
    if (r.eventName === 'CreateKey') {
      // The key's first policy: its creator's, as trusted as the key itself. Without one, KMS's default (account root, kms:*) admits no named image.
      const text = r.requestParameters?.policy;
      const judged = text === undefined ? { document: DEFAULT_KEY_POLICY(accountOfKey(keyArn)) } : judgePolicy(text, keyArn);
      inForce = judged.document ? { document: judged.document, eventID: r.eventID ?? '', trusted: true } : null;
      continue;
    }
    if (r.eventName === 'ScheduleKeyDeletion') {
      flag(r, 'KEY_DELETION', `the key was scheduled for deletion${r.requestParameters?.pendingWindowInDays !== undefined ? ` in ${String(r.requestParameters.pendingWindowInDays)} days` : ''}: every TSK blob under it will be lost (CancelKeyDeletion stops it)`);
      continue;
    }
    if (op.class !== 'authority') continue;
    const change: KeyChange = { eventID: r.eventID ?? '', ...(r.requestID ? { requestID: r.requestID } : {}), eventTime: r.eventTime, eventName: r.eventName, principal: principalOf(r) };
    if (r.eventName === 'PutKeyPolicy') {
      const { document, ...judged } = judgePolicy(r.requestParameters?.policy, keyArn);
      change.policy = judged;
      inForce = document ? { document, eventID: r.eventID ?? '', trusted: acked(r) } : null;
      const weak: string[] = [];
      if ('unreadable' in judged) weak.push(`its text cannot be read (${judged.unreadable})`);
      else {
        // An unattested Decrypt allowed implies any enclave is too: say the worse.
        if (!judged.deniesUnattestedDecrypt) weak.push('the new policy does NOT deny a Decrypt without attestation');
        else if (judged.admitsAnyEnclave) weak.push('the new policy admits an enclave image it does not name (any attested enclave)');
        else if (judged.admitsDebugEnclave) weak.push('the new policy admits debug-mode enclaves (PCR0 all zeros)');
      }
      flag(r, 'POLICY_CHANGED', `the key policy was replaced${weak.map((w) => `; ${w}`).join('')}`);
    } else if (r.eventName === 'CreateGrant') {
      const p = r.requestParameters ?? {};
      flag(r, 'GRANT_CREATED', `a grant gives ${String(p.granteePrincipal ?? 'someone')} ${asArray(p.operations as string[] | undefined).join(', ') || 'operations'} on the key`);
    } else flag(r, 'AUTHORITY_CHANGED', `${r.eventName} succeeded: ${op.why}`);
    changes.push(change);
  }
  const isAck = (f: AuditFinding) => f.code !== 'TRAIL_TOO_LARGE' && (ack.has(f.eventID) || (f.requestID !== undefined && ack.has(f.requestID)));
  if (options.incomplete) {
    const { readEvents, oldestRead } = options.incomplete;
    all.unshift({
      code: 'TRAIL_TOO_LARGE',
      eventID: '',
      eventTime: oldestRead,
      eventName: 'LookupEvents',
      principal: '',
      message: `the trail holds more events than the audit may read: it read the newest ${readEvents}, back to ${oldestRead}; nothing before that was judged. Audit a shorter --since, or raise --max-events`,
    });
  }
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
