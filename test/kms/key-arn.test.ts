import { describe, expect, it } from 'vitest';
import { checkRegion, parsePinnedKeyArn, partitionOf, responseMatches } from '../../src/kms/key-arn.js';

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
