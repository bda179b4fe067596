import { NitroEnclaveError } from '../errors.js';

/** A pinned KMS key: parsed from a key ARN or an alias ARN. */
export interface PinnedKey {
  arn: string;
  partition: string;
  region: string;
  account: string;
  /** `key` for `key/<id>`, `alias` for `alias/<name>`. */
  kind: 'key' | 'alias';
  /** The key id (kind `key`) or the alias name with its `alias/` prefix (kind `alias`). */
  resource: string;
}

/**
 * Every partition KMS runs in, with its region pattern: the `regionRegex` of the AWS SDK's partition
 * table (`@aws-sdk/core`, `partitions.json`), lower-case only as KMS ARNs are. A test compares this
 * table with the SDK's, so a partition AWS adds fails CI until it is added here.
 */
export const KMS_PARTITIONS: Readonly<Record<string, RegExp>> = {
  aws: /^(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z0-9]+-\d+$/,
  'aws-cn': /^cn-[a-z0-9]+-\d+$/,
  'aws-eusc': /^eusc-de-[a-z0-9]+-\d+$/,
  'aws-iso': /^us-iso-[a-z0-9]+-\d+$/,
  'aws-iso-b': /^us-isob-[a-z0-9]+-\d+$/,
  'aws-iso-e': /^eu-isoe-[a-z0-9]+-\d+$/,
  'aws-iso-f': /^us-isof-[a-z0-9]+-\d+$/,
  'aws-us-gov': /^us-gov-[a-z0-9]+-\d+$/,
};

const ARN = /^arn:(aws(?:-[a-z]+)*):kms:([a-z0-9-]{1,40}):(\d{12}):(key\/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})|alias\/[a-zA-Z0-9/_-]{1,250})$/;

/** The partition a region belongs to (KMS ARNs name both, and they must agree); `undefined` for a region of no known partition. */
export function partitionOf(region: string): string | undefined {
  return Object.keys(KMS_PARTITIONS).find((p) => KMS_PARTITIONS[p]!.test(region));
}

const SUBSTITUTION = 'The key must come from the enclave image (measured in PCR0), named by a key ARN or alias ARN with its account and region: a bare alias or key id is resolved in whatever account the credentials belong to, and the parent serves those credentials, so it could make a bare alias name a key of its own account, to which it holds the plaintext.';

/**
 * Parses the key the enclave pins. Throws `TypeError` unless `keyId` is a KMS
 * key ARN (`arn:aws:kms:<region>:<account>:key/<id>`) or alias ARN
 * (`…:alias/<name>`) of a partition KMS runs in ({@link KMS_PARTITIONS}) whose
 * region fits it. An alias under `alias/aws/` (an AWS managed key) is refused.
 *
 * @example
 * ```ts
 * const pinned = parsePinnedKeyArn('arn:aws:kms:us-east-1:111122223333:alias/confidential-workflow-tsk');
 * pinned.account; // '111122223333'
 * ```
 */
export function parsePinnedKeyArn(keyId: unknown, what = 'keyId'): PinnedKey {
  if (keyId === undefined || keyId === null || keyId === '') throw new TypeError(`${what} is required. ${SUBSTITUTION}`);
  if (typeof keyId !== 'string') throw new TypeError(`${what} must be a string (a KMS key ARN or alias ARN)`);
  const m = ARN.exec(keyId);
  if (!m) {
    const shown = keyId.length > 120 ? `${keyId.slice(0, 120)}…` : keyId;
    throw new TypeError(`${what} "${shown}" is not a KMS key ARN or alias ARN (arn:aws:kms:<region>:<account>:key/<key-id> or …:alias/<name>). ${SUBSTITUTION}`);
  }
  const [, partition, region, account, resource] = m as unknown as [string, string, string, string, string];
  if (!Object.hasOwn(KMS_PARTITIONS, partition)) throw new TypeError(`${what}: ${partition} is not a partition KMS runs in (${Object.keys(KMS_PARTITIONS).join(', ')})`);
  const regionPartition = partitionOf(region);
  if (regionPartition === undefined) throw new TypeError(`${what}: ${region} is not a region of any partition (${partition} regions look like ${KMS_PARTITIONS[partition]!.source})`);
  if (regionPartition !== partition) throw new TypeError(`${what}: region ${region} belongs to partition ${regionPartition}, not ${partition}`);
  if (resource.startsWith('alias/aws/')) {
    throw new TypeError(`${what}: ${resource} names an AWS managed key, whose key policy AWS writes: it can never carry the attestation conditions that keep the TSK inside the enclave. Pin a customer managed key.`);
  }
  const kind = resource.startsWith('key/') ? 'key' : 'alias';
  return { arn: keyId, partition, region, account, kind, resource: kind === 'key' ? resource.slice(4) : resource };
}

/** Fails with ERR_KMS_WRONG_REGION when the pinned key lives in another region than the client's. */
export function checkRegion(pinned: PinnedKey, region: string | undefined): void {
  if (region === undefined) return;
  if (region !== pinned.region) {
    throw new NitroEnclaveError('ERR_KMS_WRONG_REGION', `keyId is in ${pinned.region} but region is ${region}: a KMS ciphertext can only be decrypted in the key's region`);
  }
}

/**
 * Whether KMS's answer names the pinned key: same partition, region and
 * account, and for a key ARN the same key. (KMS answers with the key ARN even
 * when asked by alias, so an alias pin can check everything but the key id;
 * KMS itself checked that the alias names the blob's key, since the ARN was
 * sent as `KeyId`.)
 */
export function responseMatches(pinned: PinnedKey, responseKeyId: string | undefined): boolean {
  if (typeof responseKeyId !== 'string') return false;
  const m = /^arn:(aws[a-z-]*):kms:([^:]+):(\d{12}):key\/([^/]+)$/.exec(responseKeyId);
  if (!m) return false;
  const [, partition, region, account, id] = m;
  if (partition !== pinned.partition || region !== pinned.region || account !== pinned.account) return false;
  return pinned.kind === 'alias' || id === pinned.resource;
}
