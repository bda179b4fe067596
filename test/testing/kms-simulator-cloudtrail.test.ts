/**
 * The seed's last step, "Verify via CloudTrail", against the simulator's
 * trail: read with the real AWS CLI (botocore signs and paginates on its
 * own) and the real @aws-sdk/client-cloudtrail, as they read CloudTrail's
 * event history (LookupEvents).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudTrailClient, LookupEventsCommand, paginateLookupEvents, type Event } from '@aws-sdk/client-cloudtrail';
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyWithoutPlaintextCommand, type KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { createSimulatedEnclave, kmsClientConfig, startKmsSimulator, type KmsSimulator, type TestPrincipal } from '../../src/testing/index.js';
import { awsAgainst, awsAvailable, cliError } from '../helpers/aws-cli.js';
import { client, recipient, rsaPair } from '../helpers/kms.js';

const enclave = createSimulatedEnclave();
const tmp = mkdtempSync(join(tmpdir(), 'nes-trail-'));
let sim: KmsSimulator;
let admin: KMSClient;
let role: KMSClient;
let keyArn: string;
let attestedRequestId: string;

const trail = (who: TestPrincipal) => new CloudTrailClient(kmsClientConfig(sim, who));
const errorOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return { name: (err as Error).name, message: (err as Error).message };
  }
  throw new Error('expected an error');
};

beforeAll(async () => {
  // These tests read the trail page by page as fast as they can: CloudTrail's 2 lookups a second is tested in kms-simulator-cloudtrail-fidelity.
  sim = await startKmsSimulator({ accounts: ['111122223333', '444455556666'], trustAnchors: [enclave.trustAnchor], lookupEventsPerSecond: 1000 });
  admin = client(sim, sim.principal('user/admin'));
  role = client(sim, sim.principal('EnclaveInstanceRole'));
  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }));
  keyArn = KeyMetadata!.Arn!;
  const { CiphertextBlob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyArn, KeySpec: 'AES_256' }));
  const ok = await role.send(new DecryptCommand({ CiphertextBlob, Recipient: recipient(enclave, rsaPair().spki) }));
  attestedRequestId = ok.$metadata.requestId!;
  await errorOf(role.send(new DecryptCommand({ CiphertextBlob })));
});
afterAll(async () => {
  admin?.destroy();
  role?.destroy();
  await sim?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!awsAvailable)('aws cloudtrail lookup-events against the simulator', { timeout: 180_000 }, () => {
  it('lists the attested Decrypt with its image, and the denied unattested one, newest first', async () => {
    const r = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['cloudtrail', 'lookup-events', '--lookup-attributes', 'AttributeKey=EventName,AttributeValue=Decrypt']);
    expect(r.code).toBe(0);
    const events = JSON.parse(r.stdout).Events as Array<Record<string, unknown>>;
    expect(events.map((e) => e.EventName)).toEqual(['Decrypt', 'Decrypt']);
    const [denied, attested] = events.map((e) => JSON.parse(e.CloudTrailEvent as string));
    expect(denied).toMatchObject({ errorCode: 'AccessDeniedException', userIdentity: { type: 'AssumedRole' } });
    expect(denied.additionalEventData).toBeUndefined();
    expect(attested).toMatchObject({
      requestID: attestedRequestId,
      eventSource: 'kms.amazonaws.com',
      resources: [{ ARN: keyArn, type: 'AWS::KMS::Key' }],
      additionalEventData: { recipient: { attestationDocumentModuleId: enclave.moduleId } },
    });
    expect(Buffer.from(attested.additionalEventData.recipient.attestationDocumentEnclaveImageDigest, 'base64').toString('hex')).toBe(enclave.imageSha384);
    // The summary fields botocore parsed: EventTime a timestamp, Username the role session, Resources the key.
    expect(events[1]).toMatchObject({ ReadOnly: 'true', Username: 'i-0123456789abcdef0', AccessKeyId: 'ASIATESTENCLAVEROLE1', Resources: [{ ResourceType: 'AWS::KMS::Key', ResourceName: keyArn }] });
    // AWS CLI v1 prints the wire value (epoch seconds), v2 an ISO date: either way, the record's eventTime.
    const t = events[1]!.EventTime as number | string;
    expect(new Date(typeof t === 'number' ? t * 1000 : t).toISOString().replace('.000Z', 'Z')).toBe(attested.eventTime);
  });

  it('pages with NextToken as botocore paginates (--page-size 1) and filters by resource name', async () => {
    const all = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['cloudtrail', 'lookup-events', '--lookup-attributes', `AttributeKey=ResourceName,AttributeValue=${keyArn}`]);
    const paged = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['cloudtrail', 'lookup-events', '--page-size', '1', '--lookup-attributes', `AttributeKey=ResourceName,AttributeValue=${keyArn}`]);
    const names = (r: { stdout: string }) => (JSON.parse(r.stdout).Events as Event[]).map((e) => `${e.EventName}`);
    expect(names(all)).toEqual(['Decrypt', 'Decrypt', 'GenerateDataKeyWithoutPlaintext', 'CreateKey']);
    expect(names(paged)).toEqual(names(all));
  });

  it('refuses two lookup attributes as CloudTrail does', async () => {
    const r = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['cloudtrail', 'lookup-events', '--lookup-attributes', 'AttributeKey=EventName,AttributeValue=Decrypt', 'AttributeKey=ReadOnly,AttributeValue=true']);
    expect(cliError(r)).toEqual({ code: 'InvalidLookupAttributesException', operation: 'LookupEvents', message: 'You can only specify one lookup attribute.' });
  });
});

describe('@aws-sdk/client-cloudtrail against the simulator', () => {
  it('LookupEvents by event name, time range and page size; the paginator follows NextToken to the same events', async () => {
    const ct = trail(sim.principal('user/admin'));
    const now = new Date();
    const all: Event[] = [];
    for await (const page of paginateLookupEvents({ client: ct, pageSize: 1 }, { LookupAttributes: [{ AttributeKey: 'ResourceName', AttributeValue: keyArn }] })) all.push(...(page.Events ?? []));
    expect(all.map((e) => e.EventName)).toEqual(['Decrypt', 'Decrypt', 'GenerateDataKeyWithoutPlaintext', 'CreateKey']);
    expect(all[0]!.EventTime).toBeInstanceOf(Date);
    const future = await ct.send(new LookupEventsCommand({ StartTime: new Date(now.getTime() + 3600_000) }));
    expect(future.Events).toEqual([]);
    const byAccessKey = await ct.send(new LookupEventsCommand({ LookupAttributes: [{ AttributeKey: 'AccessKeyId', AttributeValue: 'ASIATESTENCLAVEROLE1' }] }));
    expect(byAccessKey.Events!.map((e) => e.EventName)).toEqual(['Decrypt', 'Decrypt']);
    ct.destroy();
  });

  it('refuses what CloudTrail refuses: MaxResults over 50, a reversed time range, a foreign or altered NextToken, an unknown category', async () => {
    const ct = trail(sim.principal('user/admin'));
    expect(await errorOf(ct.send(new LookupEventsCommand({ MaxResults: 51 })))).toEqual({ name: 'InvalidMaxResultsException', message: 'MaxResults must be between 1 and 50.' });
    expect(await errorOf(ct.send(new LookupEventsCommand({ StartTime: new Date(2026, 1, 2), EndTime: new Date(2026, 1, 1) })))).toEqual({ name: 'InvalidTimeRangeException', message: 'Start time must be before end time.' });
    const first = await ct.send(new LookupEventsCommand({ MaxResults: 1 }));
    expect(first.NextToken).toBeDefined();
    const reused = ct.send(new LookupEventsCommand({ MaxResults: 1, NextToken: first.NextToken, LookupAttributes: [{ AttributeKey: 'EventName', AttributeValue: 'Decrypt' }] }));
    expect(await errorOf(reused)).toEqual({ name: 'InvalidNextTokenException', message: 'Invalid NextToken.' });
    expect(await errorOf(ct.send(new LookupEventsCommand({ NextToken: 'x' })))).toEqual({ name: 'InvalidNextTokenException', message: 'Invalid NextToken.' });
    expect(await errorOf(ct.send(new LookupEventsCommand({ EventCategory: 'other' as 'insight' })))).toEqual({ name: 'InvalidEventCategoryException', message: 'Invalid event category: other' });
    expect((await ct.send(new LookupEventsCommand({ EventCategory: 'insight' }))).Events).toEqual([]);
    ct.destroy();
  });

  it('needs IAM cloudtrail:LookupEvents, and shows an account only its own trail', async () => {
    const other = trail(sim.principal('user/other'));
    expect(await errorOf(other.send(new LookupEventsCommand({})))).toEqual({
      name: 'AccessDeniedException',
      message: `User: arn:aws:iam::${sim.accountId}:user/other is not authorized to perform: cloudtrail:LookupEvents on resource: * because no identity-based policy allows the cloudtrail:LookupEvents action`,
    });
    other.destroy();
    const foreign = trail(sim.principal('user/admin', '444455556666'));
    expect((await foreign.send(new LookupEventsCommand({}))).Events).toEqual([]);
    foreign.destroy();
  });

  it('does not record its own LookupEvents calls, nor serve any other CloudTrail operation', async () => {
    const before = sim.audit.length;
    const ct = trail(sim.principal('user/admin'));
    await ct.send(new LookupEventsCommand({ MaxResults: 1 }));
    expect(sim.audit.length).toBe(before);
    const { DescribeTrailsCommand } = await import('@aws-sdk/client-cloudtrail');
    expect(await errorOf(ct.send(new DescribeTrailsCommand({})))).toMatchObject({ name: 'UnknownOperationException' });
    ct.destroy();
  });
});
