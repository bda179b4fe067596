import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { partition as sdkPartition } from '@aws-sdk/core/client';
import { checkRegion, KMS_PARTITIONS, parsePinnedKeyArn, partitionOf, responseMatches } from '../../src/kms/key-arn.js';

// The AWS SDK's own partition table (what `partition()` above resolves with), read from the installed @aws-sdk/core.
const core = dirname(createRequire(import.meta.url).resolve('@aws-sdk/core/package.json'));
const sdkPartitions = ((await import(join(core, 'dist-es/submodules/client/util-endpoints/lib/aws/partitions.js'))) as { partitionsInfo: { partitions: Array<{ id: string; regions: Record<string, unknown> }> } }).partitionsInfo;

const KEY = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const ALIAS = 'arn:aws:kms:us-east-1:111122223333:alias/confidential-workflow-tsk';

describe('parsePinnedKeyArn', () => {
  it('parses a key ARN, a multi-Region key ARN and an alias ARN', () => {
    expect(parsePinnedKeyArn(KEY)).toEqual({ arn: KEY, partition: 'aws', region: 'us-east-1', account: '111122223333', kind: 'key', resource: '1234abcd-12ab-34cd-56ef-1234567890ab' });
    expect(parsePinnedKeyArn('arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab').resource).toBe('mrk-1234abcd12ab34cd56ef1234567890ab');
    expect(parsePinnedKeyArn(ALIAS)).toMatchObject({ kind: 'alias', resource: 'alias/confidential-workflow-tsk' });
    expect(parsePinnedKeyArn('arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x').partition).toBe('aws-us-gov');
  });

  it('refuses what a hostile parent could redirect (bare alias, key id, wildcards) and says why', () => {
    for (const keyId of ['alias/confidential-workflow-tsk', '1234abcd-12ab-34cd-56ef-1234567890ab', `${KEY.slice(0, -1)}*`, 'arn:aws:kms:us-east-1:11112222333:key/1234abcd-12ab-34cd-56ef-1234567890ab', 'arn:aws:s3:::bucket']) {
      expect(() => parsePinnedKeyArn(keyId)).toThrow(TypeError);
    }
    expect(() => parsePinnedKeyArn('alias/x')).toThrow(/the parent serves those credentials/);
    expect(() => parsePinnedKeyArn(undefined)).toThrow(/keyId is required/);
    expect(() => parsePinnedKeyArn(42)).toThrow(/must be a string/);
  });

  it('refuses a partition that does not fit the region, and shortens a huge value in the message', () => {
    expect(() => parsePinnedKeyArn('arn:aws-cn:kms:us-east-1:111122223333:alias/x')).toThrow(/belongs to partition aws/);
    const huge = `arn:aws:kms:us-east-1:111122223333:alias/${'a'.repeat(5000)}`;
    expect(() => parsePinnedKeyArn(huge)).toThrow(TypeError);
    try {
      parsePinnedKeyArn(huge);
    } catch (err) {
      expect((err as Error).message.length).toBeLessThan(1000);
    }
  });

  it('partitionOf knows the partitions KMS ARNs name', () => {
    expect([partitionOf('us-east-1'), partitionOf('cn-north-1'), partitionOf('us-gov-west-1'), partitionOf('us-iso-east-1'), partitionOf('us-isob-east-1')]).toEqual(['aws', 'aws-cn', 'aws-us-gov', 'aws-iso', 'aws-iso-b']);
    expect(partitionOf('xx-foo-1')).toBeUndefined();
  });

  it('accepts every partition of the AWS SDK\'s partition table, each with its own region pattern (enumerated: a new partition fails here)', () => {
    const sdk = sdkPartitions.partitions.filter((p) => p.id !== 'aws-global');
    expect(Object.keys(KMS_PARTITIONS).sort()).toEqual(sdk.map((p) => p.id).sort());
    for (const p of sdk) {
      const regions = Object.keys(p.regions).filter((r) => !r.startsWith('aws-'));
      expect(regions.length).toBeGreaterThan(0);
      for (const region of regions) {
        expect([region, sdkPartition(region).name, partitionOf(region)]).toEqual([region, p.id, p.id]);
        const arn = `arn:${p.id}:kms:${region}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
        expect(parsePinnedKeyArn(arn)).toMatchObject({ partition: p.id, region });
        expect(parsePinnedKeyArn(`arn:${p.id}:kms:${region}:111122223333:alias/tsk`).kind).toBe('alias');
      }
    }
    // main refused these: a region pattern that did not know eusc, and no aws-eusc partition.
    expect(parsePinnedKeyArn('arn:aws-eusc:kms:eusc-de-east-1:111122223333:alias/tsk').partition).toBe('aws-eusc');
    expect(() => parsePinnedKeyArn('arn:aws-eusc:kms:us-east-1:111122223333:alias/tsk')).toThrow('keyId: region us-east-1 belongs to partition aws, not aws-eusc');
    expect(() => parsePinnedKeyArn('arn:aws-moon:kms:us-east-1:111122223333:alias/tsk')).toThrow('keyId: aws-moon is not a partition KMS runs in');
    expect(() => parsePinnedKeyArn('arn:aws:kms:xx-foo-1:111122223333:alias/tsk')).toThrow('keyId: xx-foo-1 is not a region of any partition');
  });

  it('refuses an alias of an AWS managed key (alias/aws/…): its policy can never carry attestation conditions', () => {
    for (const arn of ['arn:aws:kms:us-east-1:111122223333:alias/aws/kms', 'arn:aws:kms:us-east-1:111122223333:alias/aws/ebs', 'arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/aws/s3']) {
      expect(() => parsePinnedKeyArn(arn)).toThrow(TypeError);
      expect(() => parsePinnedKeyArn(arn)).toThrow(/names an AWS managed key, whose key policy AWS writes: it can never carry the attestation conditions/);
    }
    // Only the reserved prefix: customer aliases that merely start with "aws" are fine.
    expect(parsePinnedKeyArn('arn:aws:kms:us-east-1:111122223333:alias/aws-tsk').resource).toBe('alias/aws-tsk');
    expect(parsePinnedKeyArn('arn:aws:kms:us-east-1:111122223333:alias/awsome/tsk').resource).toBe('alias/awsome/tsk');
  });
});

describe('checkRegion', () => {
  it('fails fast with ERR_KMS_WRONG_REGION when the client is in another region; no region configured passes', () => {
    expect(() => checkRegion(parsePinnedKeyArn(KEY), 'eu-west-1')).toThrow(expect.objectContaining({ code: 'ERR_KMS_WRONG_REGION' }));
    expect(() => checkRegion(parsePinnedKeyArn(KEY), 'us-east-1')).not.toThrow();
    expect(() => checkRegion(parsePinnedKeyArn(KEY), undefined)).not.toThrow();
  });
});

describe('responseMatches', () => {
  it('a key pin needs the same key; an alias pin the same partition, region and account', () => {
    const key = parsePinnedKeyArn(KEY);
    const alias = parsePinnedKeyArn(ALIAS);
    const sameAccountOtherKey = 'arn:aws:kms:us-east-1:111122223333:key/99999999-12ab-34cd-56ef-1234567890ab';
    expect(responseMatches(key, KEY)).toBe(true);
    expect(responseMatches(key, sameAccountOtherKey)).toBe(false);
    expect(responseMatches(alias, sameAccountOtherKey)).toBe(true);
    expect(responseMatches(alias, 'arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab')).toBe(false); // the parent's account
    expect(responseMatches(alias, 'arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab')).toBe(false);
    expect(responseMatches(alias, ALIAS)).toBe(false); // KMS answers with a key ARN, never an alias
    expect(responseMatches(key, undefined)).toBe(false);
  });
});
