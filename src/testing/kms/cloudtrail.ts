import { createHash } from 'node:crypto';
import { KmsError } from './errors.js';

/**
 * The identity block of a CloudTrail record, as CloudTrail writes it for IAM
 * users, assumed-role sessions (instance profiles: `sessionContext`) and the
 * account root.
 */
export interface CloudTrailUserIdentity {
  type: 'IAMUser' | 'AssumedRole' | 'Root';
  principalId: string;
  arn: string;
  accountId: string;
  accessKeyId: string;
  userName?: string;
  sessionContext?: {
    sessionIssuer: { type: 'Role'; principalId: string; arn: string; accountId: string; userName: string };
    webIdFederationData: Record<string, never>;
    attributes: { creationDate: string; mfaAuthenticated: 'false' };
    ec2RoleDelivery?: '2.0';
  };
}

/** A resource of a KMS CloudTrail record: the KMS key the call used. */
export interface CloudTrailResource {
  accountId: string;
  type: 'AWS::KMS::Key';
  ARN: string;
}

/**
 * One CloudTrail record of a KMS call, in the shape of AWS's documented
 * example events (AWS KMS Developer Guide, "Logging AWS KMS API calls with
 * AWS CloudTrail" and "Monitoring requests for Nitro enclaves").
 *
 * `userIdentity` is `null` only for requests that failed authentication
 * (bad signature, unknown key): the simulator keeps them for tests, but
 * `LookupEvents` never returns them, as no account can be named for them.
 */
export interface CloudTrailRecord {
  eventVersion: string;
  userIdentity: CloudTrailUserIdentity | null;
  eventTime: string;
  eventSource: 'kms.amazonaws.com';
  eventName: string;
  awsRegion: string;
  sourceIPAddress: string;
  userAgent: string;
  errorCode?: string;
  errorMessage?: string;
  requestParameters: Record<string, unknown>;
  responseElements: Record<string, unknown> | null;
  /** For attested calls: the facts of the attestation document (see {@link recipientFields}). */
  additionalEventData?: { recipient: Record<string, string> };
  requestID: string;
  eventID: string;
  readOnly: boolean;
  resources: CloudTrailResource[];
  eventType: 'AwsApiCall';
  managementEvent: true;
  recipientAccountId: string;
  eventCategory: 'Management';
  /** Present on the copy delivered to another account than the caller's (the key owner's). */
  sharedEventID?: string;
  tlsDetails?: { tlsVersion: string; cipherSuite: string; clientProvidedHostHeader: string };
}

/**
 * A record of something KMS did by itself (`eventType: AwsServiceEvent`), in
 * the shape of AWS's example events (AWS KMS Developer Guide, "DeleteKey",
 * "DeleteExpiredKeyMaterial", "RotateKey"): no caller, only the account and
 * `invokedBy`, no request parameters.
 */
export interface CloudTrailServiceEvent {
  eventVersion: string;
  userIdentity: { accountId: string; invokedBy: 'AWS Internal' };
  eventTime: string;
  eventSource: 'kms.amazonaws.com';
  eventName: 'DeleteKey' | 'DeleteExpiredKeyMaterial' | 'RotateKey' | 'SynchronizeMultiRegionKey';
  awsRegion: string;
  sourceIPAddress: 'AWS Internal';
  userAgent: 'AWS Internal';
  requestParameters: null;
  responseElements: Record<string, unknown> | null;
  eventID: string;
  readOnly: false;
  resources: CloudTrailResource[];
  eventType: 'AwsServiceEvent';
  managementEvent: true;
  recipientAccountId: string;
  serviceEventDetails?: Record<string, unknown>;
  eventCategory: 'Management';
}

/** Builds the record of a KMS service event on one key. DeleteKey names the key's ARN in `responseElements.keyId`, as KMS does since December 2022. */
export function kmsServiceEventRecord(f: { eventName: CloudTrailServiceEvent['eventName']; time: Date; keyArn: string; eventId: string; serviceEventDetails?: Record<string, unknown> }): CloudTrailServiceEvent {
  const [, region = '', account = ''] = /^arn:aws[\w-]*:kms:([^:]*):(\d{12}):/.exec(f.keyArn) ?? [];
  return {
    eventVersion: '1.11',
    userIdentity: { accountId: account, invokedBy: 'AWS Internal' },
    eventTime: isoSeconds(f.time),
    eventSource: 'kms.amazonaws.com',
    eventName: f.eventName,
    awsRegion: region,
    sourceIPAddress: 'AWS Internal',
    userAgent: 'AWS Internal',
    requestParameters: null,
    responseElements: f.eventName === 'DeleteKey' ? { keyId: f.keyArn } : null,
    eventID: f.eventId,
    readOnly: false,
    resources: [{ accountId: account, type: 'AWS::KMS::Key', ARN: f.keyArn }],
    eventType: 'AwsServiceEvent',
    managementEvent: true,
    recipientAccountId: account,
    ...(f.serviceEventDetails ? { serviceEventDetails: f.serviceEventDetails } : {}),
    eventCategory: 'Management',
  };
}

/** The KMS operations CloudTrail marks `readOnly: true`: reads and the cryptographic operations. */
const READ_ONLY = /^(Describe|Get|List)|^(Decrypt|Encrypt|ReEncrypt|GenerateDataKey|GenerateDataKeyWithoutPlaintext|GenerateDataKeyPair|GenerateDataKeyPairWithoutPlaintext|GenerateRandom|DeriveSharedSecret|Sign|Verify|GenerateMac|VerifyMac|Encapsulate|Decapsulate)$/;

/** Request and response members CloudTrail never records: ciphertexts, plaintexts, key material, import and grant tokens, messages. */
const SECRET_MEMBERS = new Set([
  'CiphertextBlob',
  'Plaintext',
  'PrivateKeyPlaintext',
  'PrivateKeyCiphertextBlob',
  'CiphertextForRecipient',
  'SharedSecret',
  'EncryptedKeyMaterial',
  'ImportToken',
  'Message',
  'Signature',
  'Mac',
  'PublicKey',
  'Recipient',
  // CloudTrail's CreateGrant record shows the grant id, not the token that uses the grant before it propagates.
  'GrantToken',
]);

const camel = (k: string) => k.charAt(0).toLowerCase() + k.slice(1);

function camelCopy(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_MEMBERS.has(k)) continue;
    // Encryption contexts are the caller's own map: CloudTrail records their keys as sent.
    if (v && typeof v === 'object' && !Array.isArray(v) && !/EncryptionContext$/.test(k)) out[camel(k)] = camelCopy(v as Record<string, unknown>);
    else out[camel(k)] = v;
  }
  return out;
}

/**
 * `requestParameters` as CloudTrail records them for KMS: member names in
 * camelCase, without blobs, plaintexts or the `Recipient` document; the key
 * policy text of PutKeyPolicy in full. Decrypt always names its
 * `encryptionAlgorithm` and the key (the key's ARN when the request gave
 * none); PutKeyPolicy always names `policyName` and
 * `bypassPolicyLockoutSafetyCheck`.
 */
export function requestParametersOf(eventName: string, body: Record<string, unknown>, keyArn: string | undefined): Record<string, unknown> {
  const params = camelCopy(body);
  if (eventName === 'Decrypt') {
    const { keyId, ...rest } = params;
    return { encryptionAlgorithm: 'SYMMETRIC_DEFAULT', ...(keyId !== undefined ? { keyId } : keyArn ? { keyId: keyArn } : {}), ...rest };
  }
  if (eventName === 'PutKeyPolicy') return { ...params, policyName: params.policyName ?? 'default', bypassPolicyLockoutSafetyCheck: params.bypassPolicyLockoutSafetyCheck ?? false };
  return params;
}

/** The PCRs CloudTrail writes for a Nitro enclave: PCR0 as the image digest, then PCR1-4 and PCR8. */
const RECIPIENT_PCRS = [1, 2, 3, 4, 8] as const;

const hexToBase64 = (v: string) => (/^[0-9a-fA-F]{96}$/.test(v) ? Buffer.from(v, 'hex').toString('base64') : v);

/**
 * The `additionalEventData.recipient` of an attested call, from the verified
 * document's module id and PCRs (hex): `attestationDocumentModuleId`,
 * `attestationDocumentEnclaveImageDigest` (PCR0) and
 * `attestationDocumentEnclavePCR1`…`PCR4`, `PCR8`. The PCR values are
 * base64, as CloudTrail writes them in real trails (a published trail
 * excerpt shows `"attestationDocumentEnclavePCR1": "O0p+…l00D"` and an
 * unsigned image's PCR8 as `"AAAA…AAAA"`); AWS's documentation shows
 * placeholders, and one older example hex. Readers should accept both
 * (`nitro-enclave audit` does).
 */
export function recipientFields(facts: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  if (facts.attestationDocumentModuleId !== undefined) out.attestationDocumentModuleId = facts.attestationDocumentModuleId;
  if (facts.attestationDocumentEnclaveImageDigest !== undefined) out.attestationDocumentEnclaveImageDigest = hexToBase64(facts.attestationDocumentEnclaveImageDigest);
  for (const i of RECIPIENT_PCRS) {
    const v = facts[`attestationDocumentEnclavePCR${i}`];
    if (v !== undefined) out[`attestationDocumentEnclavePCR${i}`] = hexToBase64(v);
  }
  return out;
}

/** A stable IAM-style unique id (`AIDA…`, `AROA…`) for a principal ARN: CloudTrail's `principalId`. */
function uniqueId(prefix: 'AIDA' | 'AROA', arn: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const digest = createHash('sha256').update(arn).digest();
  let id = prefix;
  for (let i = 0; i < 17; i++) id += alphabet[digest[i]! % 32];
  return id;
}

/**
 * `userIdentity` for a caller: `IAMUser` for `arn:aws:iam::A:user/…`,
 * `AssumedRole` with its `sessionContext` for `arn:aws:sts::A:assumed-role/R/s`
 * (`ec2RoleDelivery` when the session is an instance profile's, named for
 * the instance), `Root` for `arn:aws:iam::A:root`.
 */
export function userIdentityOf(arn: string, accessKeyId: string, sessionIssuedAt: Date): CloudTrailUserIdentity {
  const account = /^arn:aws:(?:iam|sts)::(\d{12}):/.exec(arn)?.[1] ?? '';
  const session = /^arn:aws:sts::(\d{12}):assumed-role\/([^/]+)\/(.+)$/.exec(arn);
  if (session) {
    const [, , role, name] = session as unknown as [string, string, string, string];
    const roleArn = `arn:aws:iam::${account}:role/${role}`;
    const roleId = uniqueId('AROA', roleArn);
    return {
      type: 'AssumedRole',
      principalId: `${roleId}:${name}`,
      arn,
      accountId: account,
      accessKeyId,
      sessionContext: {
        sessionIssuer: { type: 'Role', principalId: roleId, arn: roleArn, accountId: account, userName: role },
        webIdFederationData: {},
        attributes: { creationDate: isoSeconds(sessionIssuedAt), mfaAuthenticated: 'false' },
        ...(/^i-[0-9a-f]{8,17}$/.test(name) ? { ec2RoleDelivery: '2.0' as const } : {}),
      },
    };
  }
  if (/:root$/.test(arn)) return { type: 'Root', principalId: account, arn, accountId: account, accessKeyId };
  return { type: 'IAMUser', principalId: uniqueId('AIDA', arn), arn, accountId: account, accessKeyId, userName: arn.split('/').at(-1)! };
}

/** CloudTrail's time format: UTC to the second. */
export const isoSeconds = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

/** What the simulator knows of one KMS request when it records it. */
export interface KmsCallFacts {
  eventName: string;
  time: Date;
  region: string;
  /** The authenticated caller, or `null` when authentication failed. */
  caller: { arn: string; accessKeyId: string; sessionIssuedAt: Date } | null;
  sourceIPAddress: string;
  userAgent: string;
  /** The request body as parsed (the raw JSON members). */
  body: Record<string, unknown>;
  /** The response body of a successful call. */
  response?: Record<string, unknown>;
  error?: { code: string; message: string };
  /** ARNs of the keys the call used. */
  keyArns: string[];
  /** The attestation facts of an attested call (hex PCRs, as the verifier reports them). */
  recipient?: Record<string, string>;
  requestId: string;
  eventId: string;
  tls?: { tlsVersion: string; cipherSuite: string; clientProvidedHostHeader: string };
}

/** Builds the CloudTrail record of one KMS request. */
export function kmsEventRecord(f: KmsCallFacts): CloudTrailRecord {
  const identity = f.caller ? userIdentityOf(f.caller.arn, f.caller.accessKeyId, f.caller.sessionIssuedAt) : null;
  const readOnly = READ_ONLY.test(f.eventName);
  const response = !f.error && !readOnly && f.response ? camelCopy(f.response) : null;
  const keyAccount = (arn: string) => /^arn:aws[\w-]*:kms:[^:]*:(\d{12}):/.exec(arn)?.[1] ?? '';
  return {
    eventVersion: '1.11',
    userIdentity: identity,
    eventTime: isoSeconds(f.time),
    eventSource: 'kms.amazonaws.com',
    eventName: f.eventName,
    awsRegion: f.region,
    sourceIPAddress: f.sourceIPAddress,
    userAgent: f.userAgent,
    ...(f.error ? { errorCode: f.error.code, errorMessage: f.error.message } : {}),
    requestParameters: requestParametersOf(f.eventName, f.body, f.keyArns[0]),
    responseElements: response && Object.keys(response).length > 0 ? response : null,
    ...(f.recipient ? { additionalEventData: { recipient: recipientFields(f.recipient) } } : {}),
    requestID: f.requestId,
    eventID: f.eventId,
    readOnly,
    resources: [...new Set(f.keyArns)].map((ARN) => ({ accountId: keyAccount(ARN), type: 'AWS::KMS::Key' as const, ARN })),
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: identity?.accountId ?? '',
    eventCategory: 'Management',
    ...(f.tls ? { tlsDetails: f.tls } : {}),
  };
}

/** `Username` of LookupEvents: the IAM user's name, the role session's name, or `root`. */
export function lookupUsername(identity: CloudTrailUserIdentity): string {
  if (identity.type === 'AssumedRole') return identity.arn.split('/').at(-1)!;
  if (identity.type === 'Root') return 'root';
  return identity.userName ?? identity.arn.split('/').at(-1)!;
}

const ATTRIBUTE_KEYS = ['EventId', 'EventName', 'ReadOnly', 'Username', 'ResourceType', 'ResourceName', 'EventSource', 'AccessKeyId'] as const;
type AttributeKey = (typeof ATTRIBUTE_KEYS)[number];

type TrailEntry = CloudTrailRecord | CloudTrailServiceEvent;

/** A caller's identity: absent for KMS's own events (they have no user name or access key). */
const callerOf = (r: TrailEntry): CloudTrailUserIdentity | undefined => (r.eventType === 'AwsApiCall' && r.userIdentity ? r.userIdentity : undefined);

function attributeMatches(record: TrailEntry, key: AttributeKey, value: string): boolean {
  const id = callerOf(record);
  switch (key) {
    case 'EventId':
      return record.eventID === value;
    case 'EventName':
      return record.eventName === value;
    case 'ReadOnly':
      return String(record.readOnly) === value;
    case 'Username':
      return id !== undefined && lookupUsername(id) === value;
    case 'ResourceType':
      return record.resources.some((r) => r.type === value);
    case 'ResourceName':
      return record.resources.some((r) => r.ARN === value);
    case 'EventSource':
      return record.eventSource === value;
    case 'AccessKeyId':
      return id?.accessKeyId === value;
  }
}

/** CloudTrail's LookupEvents window: events of the last 90 days. */
const RETENTION_MS = 90 * 86_400_000;

function epochSeconds(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new KmsError('SerializationException', `${field} must be a timestamp (epoch seconds)`);
  return v * 1000;
}

/**
 * Answers CloudTrail's `LookupEvents` (API version 2013-11-01) for one
 * account in one region (CloudTrail's event history is regional): the events that account's trail
 * holds (its own calls, calls by other accounts on its keys unless access
 * was denied, and KMS's own events on its keys), newest first, within the last 90 days, filtered by at most one lookup attribute
 * and the time range, `MaxResults` (1-50, default 50) per page with a
 * `NextToken` bound to the parameters it was issued for. `EventCategory`
 * `insight` returns nothing: the simulator has no Insights events.
 */
export function lookupEvents(records: readonly TrailEntry[], body: Record<string, unknown>, ctx: { accountId: string; region: string; now: Date }): Record<string, unknown> {
  const attributes = body.LookupAttributes ?? [];
  if (!Array.isArray(attributes)) throw new KmsError('SerializationException', 'LookupAttributes must be a list');
  if (attributes.length > 1) throw new KmsError('InvalidLookupAttributesException', 'You can only specify one lookup attribute.');
  const attribute = attributes[0] as { AttributeKey?: unknown; AttributeValue?: unknown } | undefined;
  if (attribute !== undefined) {
    if (!ATTRIBUTE_KEYS.includes(attribute.AttributeKey as AttributeKey)) throw new KmsError('InvalidLookupAttributesException', `Invalid attribute key: ${String(attribute.AttributeKey)}`);
    const v = attribute.AttributeValue;
    if (typeof v !== 'string' || v.length < 1 || v.length > 2000) throw new KmsError('InvalidLookupAttributesException', 'Lookup attribute value must be 1 to 2000 characters.');
  }
  const max = body.MaxResults ?? 50;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 50) throw new KmsError('InvalidMaxResultsException', 'MaxResults must be between 1 and 50.');
  if (body.EventCategory !== undefined && body.EventCategory !== 'insight') throw new KmsError('InvalidEventCategoryException', `Invalid event category: ${String(body.EventCategory)}`);
  const start = epochSeconds(body.StartTime, 'StartTime');
  const end = epochSeconds(body.EndTime, 'EndTime');
  if (start !== undefined && end !== undefined && start > end) throw new KmsError('InvalidTimeRangeException', 'Start time must be before end time.');
  const bound = createHash('sha256')
    .update(JSON.stringify([ctx.accountId, ctx.region, attribute?.AttributeKey, attribute?.AttributeValue, body.StartTime, body.EndTime, body.EventCategory]))
    .digest('base64url')
    .slice(0, 16);
  let before = records.length;
  if (body.NextToken !== undefined) {
    const m = typeof body.NextToken === 'string' ? /^([A-Za-z0-9_-]{16})\.(\d+)$/.exec(body.NextToken) : null;
    if (!m || m[1] !== bound || Number(m[2]) > records.length) throw new KmsError('InvalidNextTokenException', 'Invalid NextToken.');
    before = Number(m[2]);
  }
  if (body.EventCategory === 'insight') return { Events: [] };
  const oldest = ctx.now.getTime() - RETENTION_MS;
  const events: Record<string, unknown>[] = [];
  let i = before - 1;
  // Records are appended in time order, so their index orders them: the token is the index to continue below.
  for (; i >= 0 && events.length < max; i--) {
    const r = records[i]!;
    if (!r.userIdentity || r.awsRegion !== ctx.region) continue;
    const ownCall = r.recipientAccountId === ctx.accountId;
    if (!ownCall && !r.resources.some((res) => res.accountId === ctx.accountId)) continue;
    // AWS KMS Developer Guide: "cross-account AWS KMS requests that are rejected because access is denied are logged only in the caller's account".
    if (!ownCall && r.eventType === 'AwsApiCall' && r.errorCode === 'AccessDeniedException') continue;
    const t = Date.parse(r.eventTime);
    if (t < oldest || (start !== undefined && t < start) || (end !== undefined && t > end)) continue;
    if (attribute && !attributeMatches(r, attribute.AttributeKey as AttributeKey, attribute.AttributeValue as string)) continue;
    const delivered: object = ownCall ? r : { ...r, recipientAccountId: ctx.accountId, sharedEventID: r.eventID };
    const caller = callerOf(r);
    events.push({
      EventId: r.eventID,
      EventName: r.eventName,
      ReadOnly: String(r.readOnly),
      ...(caller ? { AccessKeyId: caller.accessKeyId } : {}),
      EventTime: t / 1000,
      EventSource: r.eventSource,
      ...(caller ? { Username: lookupUsername(caller) } : {}),
      Resources: r.resources.map((res) => ({ ResourceType: res.type, ResourceName: res.ARN })),
      CloudTrailEvent: JSON.stringify(delivered),
    });
  }
  const more = events.length === max && records.slice(0, i + 1).some((r) => r.userIdentity);
  return { Events: events, ...(more ? { NextToken: `${bound}.${i + 1}` } : {}) };
}
