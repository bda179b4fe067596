/**
 * Where the simulator's trail must behave as CloudTrail does for the audit
 * to be tested honestly: a refused cross-account call is logged only in the
 * caller's account; KMS's own events (DeleteKey, …) appear as AwsServiceEvent;
 * LookupEvents allows two requests a second; and the audit reads a flooded
 * trail in bounded time and says it could not read it all.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { constants, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyWithoutPlaintextCommand, GetParametersForImportCommand, ImportKeyMaterialCommand, KMSClient, ScheduleKeyDeletionCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditCommand } from '../../src/cli/commands/audit.js';
import { auditKeyTrail, type AuditReport, type TrailRecord } from '../../src/parent/audit.js';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { createSimulatedEnclave, kmsClientConfig, startKmsSimulator, type KmsSimulator, type TestPrincipal } from '../../src/testing/index.js';
import { awsAgainst, awsAvailable } from '../helpers/aws-cli.js';
import { runCli } from '../helpers/cli.js';

const enclave = createSimulatedEnclave();
const tmp = mkdtempSync(join(tmpdir(), 'nes-trail-fidelity-'));
const base = Date.now();
let offsetMs = 0;
let sim: KmsSimulator;
let caFile: string;

// The simulator's clock: frozen, moved only by the test (and by the audit's injected sleep).
const clock = () => new Date(base + offsetMs);
const kms = (who: TestPrincipal) => new KMSClient({ ...kmsClientConfig(sim, who), systemClockOffset: offsetMs });
const trail = (who: TestPrincipal) => new CloudTrailClient({ ...kmsClientConfig(sim, who), systemClockOffset: offsetMs });
const lookup = async (who: TestPrincipal, keyArn: string) => {
  const ct = trail(who);
  try {
    return (await ct.send(new LookupEventsCommand({ LookupAttributes: [{ AttributeKey: 'ResourceName', AttributeValue: keyArn }] }))).Events ?? [];
  } finally {
    ct.destroy();
  }
};
/** Lets LookupEvents' rate window pass between tests. */
const nextSecond = () => void (offsetMs += 1100);

beforeAll(async () => {
  sim = await startKmsSimulator({ accounts: ['111122223333', '444455556666'], trustAnchors: [enclave.trustAnchor], clock });
  caFile = join(tmp, 'ca.pem');
  writeFileSync(caFile, sim.caPem);
});
afterAll(async () => {
  await sim?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const newKey = async () => {
  const admin = kms(sim.principal('user/admin'));
  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }));
  const { CiphertextBlob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: KeyMetadata!.Arn!, KeySpec: 'AES_256' }));
  admin.destroy();
  return { keyArn: KeyMetadata!.Arn!, blob: CiphertextBlob! };
};

describe('the trail as each account sees it', () => {
  it("a cross-account Decrypt refused for access is in the caller's trail only, not the key owner's (AWS KMS Developer Guide)", async () => {
    nextSecond();
    const { keyArn, blob } = await newKey();
    const foreign = kms(sim.principal('user/admin', '444455556666'));
    await expect(foreign.send(new DecryptCommand({ CiphertextBlob: blob, KeyId: keyArn }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    foreign.destroy();
    const owner = (await lookup(sim.principal('user/admin'), keyArn)).map((e) => JSON.parse(e.CloudTrailEvent!));
    expect(owner.map((r) => [r.eventName, r.userIdentity.accountId, r.errorCode ?? 'ok'])).toEqual([
      ['GenerateDataKeyWithoutPlaintext', '111122223333', 'ok'],
      ['CreateKey', '111122223333', 'ok'],
    ]);
    const caller = (await lookup(sim.principal('user/admin', '444455556666'), keyArn)).map((e) => JSON.parse(e.CloudTrailEvent!));
    expect(caller.map((r) => [r.eventName, r.recipientAccountId, r.errorCode])).toEqual([['Decrypt', '444455556666', 'AccessDeniedException']]);
    if (awsAvailable) {
      // botocore reads the owner's trail the same way; its own clock is real time, so move the simulator's back to it for the call.
      const saved = offsetMs;
      offsetMs = Date.now() - base;
      const r = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['cloudtrail', 'lookup-events', '--lookup-attributes', `AttributeKey=ResourceName,AttributeValue=${keyArn}`]);
      offsetMs = Math.max(saved, offsetMs) + 1100;
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout).Events as Array<{ EventName: string }>).map((e) => e.EventName)).toEqual(['GenerateDataKeyWithoutPlaintext', 'CreateKey']);
    }
  }, 60_000);
});

describe('LookupEvents: two requests a second per account and Region', () => {
  it('a third request within the second is ThrottlingException; the next second it is served; another account has its own allowance', async () => {
    nextSecond();
    const ct = trail(sim.principal('user/admin'));
    const ask = () => ct.send(new LookupEventsCommand({ MaxResults: 1 }));
    await ask();
    await ask();
    await expect(ask()).rejects.toMatchObject({ name: 'ThrottlingException', message: 'Rate exceeded' });
    const other = trail(sim.principal('user/admin', '444455556666'));
    await expect(other.send(new LookupEventsCommand({ MaxResults: 1 }))).resolves.toBeDefined();
    other.destroy();
    offsetMs += 1000;
    await expect(ask()).resolves.toBeDefined();
    ct.destroy();
  });
});

describe('nitro-enclave audit on a flooded trail', () => {
  it('paces its pages, rides out throttling, and stops at --max-events with TRAIL_TOO_LARGE (exit 4) instead of reading forever', async () => {
    nextSecond();
    const { keyArn, blob } = await newKey();
    // Someone floods the key's trail with refused calls (each one an event on the key).
    const role = kms(sim.principal('user/other'));
    for (let i = 0; i < 120; i++) await expect(role.send(new DecryptCommand({ CiphertextBlob: blob }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    role.destroy();
    // Someone else used this second's allowance: the audit's first page is throttled.
    const ct = trail(sim.principal('user/admin'));
    await ct.send(new LookupEventsCommand({ MaxResults: 1 }));
    await ct.send(new LookupEventsCommand({ MaxResults: 1 }));
    ct.destroy();
    const sleeps: number[] = [];
    const sleep = async (ms: number) => {
      sleeps.push(ms);
      offsetMs += ms;
    };
    const r = await runCli(['audit', '--key-id', keyArn, '--max-events', '100', '--json', '--endpoint', `https://localhost:${sim.port}`, '--ca-file', caFile, '--region', sim.region], sim.principal('user/admin'), {
      invoke: (args, io) => auditCommand(args.slice(1), io, clock, { sleep }),
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(4);
    const report = JSON.parse(r.stdout) as AuditReport;
    expect(report.findings.map((f) => f.code)).toEqual(['TRAIL_TOO_LARGE']);
    expect(report.findings[0]!.message).toMatch(/^the trail holds more events than the audit may read: it read the newest 100, back to \S+; nothing before that was judged/);
    // The newest 100 events on the key: the audit's own DescribeKey and GetKeyPolicy, then 98 of the refused Decrypts.
    expect(report.events).toBe(100);
    expect(report.denied).toHaveLength(98);
    // One throttled first page retried after 1 s, then the second page half a second later.
    expect(sleeps).toEqual([1000, 500]);
    const usage = await runCli(['audit', '--key-id', keyArn, '--max-events', 'lots'], sim.principal('user/admin'));
    expect(usage).toMatchObject({ code: 2, stderr: 'nitro-enclave audit: usage: --max-events expects a positive integer, got "lots"\n' });
    const alias = await runCli(['audit', '--key-id', 'alias/tsk'], sim.principal('user/admin'));
    expect(alias).toMatchObject({ code: 2, stderr: 'nitro-enclave audit: usage: --key-id must be the key ARN (arn:aws:kms:<region>:<account>:key/<id>): an alias can be re-pointed at another key by whoever may update it\n' });
  }, 60_000);
});

// Last: it moves the simulator's clock a week on (past every session and SigV4's 5 minutes of skew).
describe("KMS's own events", () => {
  it('DeleteKey is recorded (AwsServiceEvent, invokedBy AWS Internal) when the waiting period has passed, and the audit flags it and the scheduling as KEY_DELETION', async () => {
    nextSecond();
    const { keyArn } = await newKey();
    const admin = kms(sim.principal('user/admin'));
    await admin.send(new ScheduleKeyDeletionCommand({ KeyId: keyArn, PendingWindowInDays: 7 }));
    admin.destroy();
    offsetMs += 7 * 86_400_000 + 60_000;
    // No KMS call needed: KMS deletes the key at its date, and LookupEvents shows it.
    const events = await lookup(sim.principal('user/admin'), keyArn);
    const records = events.map((e) => JSON.parse(e.CloudTrailEvent!) as TrailRecord & Record<string, unknown>);
    expect(records[0]).toMatchObject({
      eventName: 'DeleteKey',
      eventType: 'AwsServiceEvent',
      userIdentity: { accountId: sim.accountId, invokedBy: 'AWS Internal' },
      sourceIPAddress: 'AWS Internal',
      requestParameters: null,
      responseElements: { keyId: keyArn },
      resources: [{ accountId: sim.accountId, type: 'AWS::KMS::Key', ARN: keyArn }],
    });
    expect(events[0]!.Username).toBeUndefined();
    expect(sim.serviceEvents.map((e) => [e.eventName, e.resources[0]!.ARN])).toContainEqual(['DeleteKey', keyArn]);
    const report = auditKeyTrail(records, { keyArn, policy: buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 }), since: new Date(clock().getTime() - 8 * 86_400_000), until: clock() });
    expect(report.findings.map((f) => [f.code, f.eventName])).toEqual([
      ['KEY_DELETION', 'ScheduleKeyDeletion'],
      ['KEY_DELETION', 'DeleteKey'],
    ]);
  });

  it('DeleteExpiredKeyMaterial is recorded when imported material reaches its ValidTo, and the audit flags it as KEY_DELETION', async () => {
    const admin = kms(sim.principal('user/admin'));
    const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Origin: 'EXTERNAL' }));
    const keyArn = KeyMetadata!.Arn!;
    const params = await admin.send(new GetParametersForImportCommand({ KeyId: keyArn, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }));
    const wrapped = publicEncrypt({ key: createPublicKey({ key: Buffer.from(params.PublicKey!), format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, randomBytes(32));
    await admin.send(new ImportKeyMaterialCommand({ KeyId: keyArn, ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped, ExpirationModel: 'KEY_MATERIAL_EXPIRES', ValidTo: new Date(clock().getTime() + 3600_000) }));
    admin.destroy();
    offsetMs += 2 * 3600_000;
    const records = (await lookup(sim.principal('user/admin'), keyArn)).map((e) => JSON.parse(e.CloudTrailEvent!) as TrailRecord & Record<string, unknown>);
    expect(records[0]).toMatchObject({ eventName: 'DeleteExpiredKeyMaterial', eventType: 'AwsServiceEvent', userIdentity: { accountId: sim.accountId, invokedBy: 'AWS Internal' }, requestParameters: null });
    // auditKeyTrail takes records oldest first (LookupEvents answers newest first): same-second events keep that order.
    const report = auditKeyTrail([...records].reverse(), { keyArn, policy: { Version: '2012-10-17', Statement: [] }, since: new Date(clock().getTime() - 86_400_000), until: clock() });
    expect(report.findings.map((f) => [f.code, f.eventName])).toEqual([
      ['AUTHORITY_CHANGED', 'GetParametersForImport'],
      ['AUTHORITY_CHANGED', 'ImportKeyMaterial'],
      ['KEY_DELETION', 'DeleteExpiredKeyMaterial'],
    ]);
  });
});
