import { DescribeKeyCommand, GetKeyPolicyCommand, ListGrantsCommand, type GrantListEntry, type KeyMetadata, type KMSClient } from '@aws-sdk/client-kms';
import { NitroEnclaveError } from '../errors.js';
import { parsePolicy, PolicySyntaxError } from '../internal/iam-policy.js';
import { parsePinnedKeyArn, responseMatches, type PinnedKey } from './key-arn.js';
import { judgeKeyPolicy, type KeyAuditFinding } from './key-policy-audit.js';
import { withRetry, type RetryPolicy } from './retry.js';

/** Options of {@link auditKmsKey}. */
export interface KeyAuditOptions {
  /**
   * Accept a multi-Region key. Default `false`. DANGEROUS: a replica lives in another Region with its
   * own key policy, which this audit cannot read, and decrypts the same blobs. With this set, the
   * key's own policy must still deny `kms:ReplicateKey` to everyone; auditing the other Regions'
   * copies (and, for a replica, its primary) is then the operator's job.
   */
  allowMultiRegionKey?: boolean;
  signal?: AbortSignal;
  /** Deadline of the whole audit in ms (all calls and retries). Default 30 000. */
  timeoutMs?: number;
  /** The time source for the deadline and retries. Default `() => new Date()`. */
  clock?: () => Date;
  retry?: RetryPolicy;
}

/** What a passed audit established. */
export interface AuditedKey {
  /** The key ARN KMS described (for an alias pin: the key the alias named at the time). */
  readonly keyArn: string;
  /** How many grants the key had; each was checked. */
  readonly grants: number;
}

/** The permissions the audit needs, named in its errors. */
const READS = 'kms:DescribeKey, kms:GetKeyPolicy and kms:ListGrants';
/** ListGrants pages are at most 100 grants; a key has at most 50 000 grants (a KMS quota), so more pages than this is not KMS. */
const MAX_GRANT_PAGES = 600;

const unsafe = (keyArn: string, why: string, cause?: unknown) =>
  new NitroEnclaveError('ERR_KMS_KEY_UNSAFE', `KMS key ${keyArn} is not safe to trust with a Trusted Session Key: ${why}`, cause === undefined ? undefined : { cause });

/** The DescribeKey facts that make a key one only KMS (and the policy's admitted enclave) can use. */
function checkMetadata(pinned: PinnedKey, m: KeyMetadata | undefined, allowMultiRegionKey: boolean): string {
  if (!m || !responseMatches(pinned, m.Arn)) {
    throw new NitroEnclaveError('ERR_KMS_KEY_MISMATCH', `KMS DescribeKey answered for key ${String(m?.Arn ?? '(none)')}, not the pinned ${pinned.arn}`);
  }
  const arn = m.Arn!;
  if (m.Origin !== 'AWS_KMS') {
    throw unsafe(
      arn,
      m.Origin === 'EXTERNAL'
        ? 'its key material was imported (Origin EXTERNAL): whoever kept a copy of it can decrypt every blob of this key outside KMS, where no key policy applies'
        : `its key material has Origin ${String(m.Origin)}, not AWS_KMS: it is kept outside KMS's own HSMs, where the key policy is not the only control`,
    );
  }
  if (m.KeyManager !== 'CUSTOMER') throw unsafe(arn, `it is not a customer managed key (KeyManager ${String(m.KeyManager)}): its key policy is not the operator's`);
  const spec = m.KeySpec ?? m.CustomerMasterKeySpec;
  if (spec !== 'SYMMETRIC_DEFAULT') throw unsafe(arn, `its KeySpec is ${String(spec)}, not SYMMETRIC_DEFAULT`);
  if (m.KeyUsage !== 'ENCRYPT_DECRYPT') throw unsafe(arn, `its KeyUsage is ${String(m.KeyUsage)}, not ENCRYPT_DECRYPT`);
  if (m.Enabled !== true || m.KeyState !== 'Enabled') throw unsafe(arn, `it is not enabled (KeyState ${String(m.KeyState)})`);
  if (m.MultiRegion !== false && !(m.MultiRegion === true && allowMultiRegionKey)) {
    throw unsafe(
      arn,
      m.MultiRegion === true
        ? 'it is a multi-Region key: each replica lives in another Region under its own key policy, which this enclave cannot read, and decrypts the same blobs. Use a single-Region key (or, knowingly, set allowMultiRegionKey)'
        : 'KMS did not say whether it is a multi-Region key',
    );
  }
  return arn;
}

/** Every open action once (its first path, with the statement or grant), so the message names them all without repeating. */
function describe(findings: KeyAuditFinding[]): string {
  const byAction = new Map<string, KeyAuditFinding>();
  // A grant is named on its own: it is a separate thing to retire.
  for (const f of findings) {
    const key = f.path.includes('through grant') ? f.text : f.action;
    if (!byAction.has(key)) byAction.set(key, f);
  }
  const [first, ...rest] = [...byAction.values()];
  const shown = rest.slice(0, 24).map((f) => f.text);
  const more = findings.length - 1 - shown.length;
  return `${first!.text}${shown.length ? `; also ${shown.join('; ')}` : ''}${more > 0 ? ` (${more} more open paths of the same operations)` : ''}`;
}

/**
 * Audits a KMS key before anything it releases is trusted, from inside the enclave: the enclave
 * terminates TLS to KMS itself, so the parent can neither forge nor alter these answers.
 *
 * - `DescribeKey`: the pinned key (an alias ARN resolves to its target), Origin `AWS_KMS`,
 *   KeyManager `CUSTOMER`, `SYMMETRIC_DEFAULT`, `ENCRYPT_DECRYPT`, enabled, single-Region (unless
 *   `allowMultiRegionKey`).
 * - `GetKeyPolicy` (`default`): for every operation the classification marks as releasing
 *   plaintext key material or minting a ciphertext (and `ReplicateKey` for a multi-Region key), the
 *   policy's explicit Deny statements alone must deny every hostile caller (the account's root, an
 *   unnamed principal of the key's account, one of another account, every principal the policy or a
 *   grant names) with no attestation, a debug-mode attestation, or another image's attestation.
 *   IAM policies are invisible from here, so an Allow never counts and a missing Deny is an open path.
 * - `ListGrants` (every page): no grant carries such an operation for a grantee the Deny statements
 *   do not close it for.
 *
 * Throws `ERR_KMS_KEY_UNSAFE` naming the open path and the statement or grant, `ERR_KMS_KEY_MISMATCH`
 * when KMS describes another key, or the KMS call's own code (`ERR_KMS_NOT_FOUND`, timeouts…).
 * A key the credentials may not read (AccessDenied on one of the three calls) is unsafe too: it
 * cannot be shown safe. See docs/trusted-session-key.md#key-audit for what is and is not checked.
 *
 * @example
 * ```ts
 * const { keyArn } = await auditKmsKey(kms, 'arn:aws:kms:us-east-1:111122223333:alias/confidential-workflow-tsk');
 * ```
 */
export async function auditKmsKey(kms: KMSClient, keyId: string, options: KeyAuditOptions = {}): Promise<AuditedKey> {
  const pinned = parsePinnedKeyArn(keyId);
  if (!kms || typeof kms.send !== 'function') throw new TypeError('kms must be a KMSClient');
  if (options.allowMultiRegionKey !== undefined && typeof options.allowMultiRegionKey !== 'boolean') throw new TypeError('allowMultiRegionKey must be a boolean');
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError('timeoutMs must be a positive number of ms');
  const clock = options.clock ?? (() => new Date());
  const deadline = clock().getTime() + timeoutMs;

  const call = async <T>(operation: string, send: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    try {
      return await withRetry(send, options.retry ?? {}, { operation, deadline, clock, ...(options.signal ? { signal: options.signal } : {}) });
    } catch (err) {
      if (err instanceof NitroEnclaveError && err.code === 'ERR_KMS_ACCESS_DENIED') {
        throw unsafe(pinned.arn, `it cannot be audited, because KMS refused kms:${operation} to these credentials. The enclave's role needs ${READS} on the key (the policy buildKeyPolicy writes grants them). (${err.message})`, err);
      }
      throw err;
    }
  };
  const describeKey = () => call('DescribeKey', (abortSignal) => kms.send(new DescribeKeyCommand({ KeyId: pinned.arn }), { abortSignal }));
  const keyPolicy = (arn: string) => call('GetKeyPolicy', (abortSignal) => kms.send(new GetKeyPolicyCommand({ KeyId: arn, PolicyName: 'default' }), { abortSignal }));
  const grantsOf = async (arn: string): Promise<GrantListEntry[]> => {
    const grants: GrantListEntry[] = [];
    let marker: string | undefined;
    for (let page = 0; page < MAX_GRANT_PAGES; page++) {
      const out = await call('ListGrants', (abortSignal) => kms.send(new ListGrantsCommand({ KeyId: arn, Limit: 100, ...(marker ? { Marker: marker } : {}) }), { abortSignal }));
      grants.push(...(out.Grants ?? []));
      if (!out.Truncated) return grants;
      if (!out.NextMarker || out.NextMarker === marker) throw unsafe(arn, 'KMS said the grant list goes on but gave no new NextMarker, so not every grant could be checked');
      marker = out.NextMarker;
    }
    throw unsafe(arn, `it has more than ${MAX_GRANT_PAGES} pages of grants, so not every grant could be checked`);
  };

  // A key ARN names the key already, so the three reads go out together; an alias must be resolved
  // first (GetKeyPolicy and ListGrants take no alias), and the policy read is of the key it names.
  let metadata: KeyMetadata | undefined;
  let reads: Promise<[{ Policy?: string }, GrantListEntry[]]>;
  if (pinned.kind === 'key') {
    reads = Promise.all([keyPolicy(pinned.arn), grantsOf(pinned.arn)]);
    reads.catch(() => {}); // awaited below, after the metadata verdict
    metadata = (await describeKey()).KeyMetadata;
  } else {
    metadata = (await describeKey()).KeyMetadata;
  }
  const keyArn = checkMetadata(pinned, metadata, options.allowMultiRegionKey ?? false);
  reads ??= Promise.all([keyPolicy(keyArn), grantsOf(keyArn)]);
  const [{ Policy }, grants] = await reads;
  let policy;
  try {
    policy = parsePolicy(Policy ?? '');
  } catch (err) {
    if (err instanceof PolicySyntaxError) throw unsafe(keyArn, `its key policy cannot be audited: ${err.message}`, err);
    throw err;
  }
  const findings = judgeKeyPolicy({ keyArn, policy, grants, replication: metadata!.MultiRegion === true });
  if (findings.length > 0) throw unsafe(keyArn, describe(findings));
  return { keyArn, grants: grants.length };
}
