/**
 * `nitro-enclave audit` against the KMS simulator's trail, read through
 * CloudTrail LookupEvents with @aws-sdk/client-cloudtrail, and cross-checked
 * with the AWS CLI's view of the same trail.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { CreateGrantCommand, CreateKeyCommand, DecryptCommand, GenerateDataKeyWithoutPlaintextCommand, PutKeyPolicyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import type { AuditReport } from '../../src/parent/audit.js';
import { createSimulatedEnclave, defaultPrincipals, startKmsSimulator, type KmsSimulator, type SimulatedPrincipal } from '../../src/testing/index.js';
import { awsAgainst, awsAvailable } from '../helpers/aws-cli.js';
import { client, recipient, rsaPair } from '../helpers/kms.js';
import { seedAvailable, seedKeyPolicy } from '../helpers/seed.js';
import { runCli } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'nes-audit-'));
const v1 = createSimulatedEnclave();
const v2 = createSimulatedEnclave({ pcrs: { 0: 'ab'.repeat(48) }, pki: v1.pki });
let sim: KmsSimulator;
let caFile: string;
let admin: KMSClient;
let role: KMSClient;

beforeAll(async () => {
  // The seed's step 4: the instance role may kms:Decrypt through IAM (what the seed's own key policy then lets through).
  const principals: SimulatedPrincipal[] = defaultPrincipals().map((p) =>
    p.arn.includes('EnclaveInstanceRole') ? { ...p, identityPolicies: [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:Decrypt', Resource: '*' }] }] } : p,
  );
  sim = await startKmsSimulator({ principals, trustAnchors: [v1.trustAnchor] });
  caFile = join(tmp, 'ca.pem');
  writeFileSync(caFile, sim.caPem);
  admin = client(sim, sim.principal('user/admin'));
  role = client(sim, sim.principal('EnclaveInstanceRole'));
});
afterAll(async () => {
  admin?.destroy();
  role?.destroy();
  await sim?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const run = (args: string[], principal: SimulatedPrincipal) => runCli(args, principal);

const flags = () => ['--endpoint', `https://localhost:${sim.port}`, '--ca-file', caFile, '--region', sim.region];
const audit = async (keyArn: string, ...extra: string[]) => {
  const r = await run(['audit', '--key-id', keyArn, '--json', ...flags(), ...extra], sim.principal('user/admin'));
  if (r.stderr) throw new Error(r.stderr);
  return { code: r.code, report: JSON.parse(r.stdout) as AuditReport };
};

/** A key under the hardened policy admitting v1, with a TSK blob, the attested Decrypt by v1 and a refused unattested one. */
async function tskKey(): Promise<{ keyArn: string; blob: Uint8Array }> {
  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: v1.imageSha384 });
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }));
  const keyArn = KeyMetadata!.Arn!;
  const { CiphertextBlob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyArn, KeySpec: 'AES_256' }));
  await role.send(new DecryptCommand({ CiphertextBlob, Recipient: recipient(v1, rsaPair().spki) }));
  await role.send(new DecryptCommand({ CiphertextBlob })).catch((err: Error) => expect(err.name).toBe('AccessDeniedException'));
  return { keyArn, blob: CiphertextBlob! };
}

describe('nitro-enclave audit', () => {
  it('a healthy key: the attested release by image, the refused unattested Decrypt, no findings, exit 0', async () => {
    const { keyArn } = await tskKey();
    const { code, report } = await audit(keyArn);
    expect(code).toBe(0);
    expect(report.findings).toEqual([]);
    expect(report.admitted).toEqual([{ pcr0: v1.imageSha384 }]);
    expect(report.images).toEqual([
      expect.objectContaining({ image: expect.objectContaining({ pcr0: v1.imageSha384 }), admitted: true, releases: 1, denied: 0, principals: [sim.principal('EnclaveInstanceRole').arn] }),
    ]);
    expect(report.denied).toEqual([expect.objectContaining({ eventName: 'Decrypt', errorCode: 'AccessDeniedException', principal: sim.principal('EnclaveInstanceRole').arn })]);
    expect(report.denied[0]!.pcr0).toBeUndefined();
    const text = await run(['audit', '--key-id', keyArn, ...flags()], sim.principal('user/admin'));
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`PCR0 ${v1.imageSha384.slice(0, 12)}…${v1.imageSha384.slice(-6)}: 1 release(s)`);
    expect(text.stdout).toMatch(/✔ no findings\n$/);
  });

  it("flags the unattested release after someone puts the seed's verbatim policy (exit 4), with the event the AWS CLI lists", { timeout: 120_000 }, async () => {
    const { keyArn, blob } = await tskKey();
    // The seed's policy verbatim when the seed is at hand; else its shape (buildKeyPolicy without the Deny statements, as `policy --no-deny-unattested` writes it).
    const weak = seedAvailable ? seedKeyPolicy(sim.accountId, v1.imageSha384) : JSON.stringify(buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: v1.imageSha384, denyUnattested: false }));
    const put = await admin.send(new PutKeyPolicyCommand({ KeyId: keyArn, Policy: weak }));
    const released = await role.send(new DecryptCommand({ CiphertextBlob: blob })); // IAM (the seed's step 4) now reaches the key
    expect(released.Plaintext).toHaveLength(32);
    released.Plaintext!.fill(0);
    const { code, report } = await audit(keyArn);
    expect(code).toBe(4);
    expect(report.findings.map((f) => [f.code, f.eventName, f.principal])).toEqual([
      ['POLICY_CHANGED', 'PutKeyPolicy', sim.principal('user/admin').arn],
      ['UNATTESTED_RELEASE', 'Decrypt', sim.principal('EnclaveInstanceRole').arn],
    ]);
    expect(report.findings[0]!.message).toBe('the key policy was replaced; the new policy does NOT deny a Decrypt without attestation');
    expect(report.findings[0]!.requestID).toBe(put.$metadata.requestId);
    expect(report.findings[1]!.message).toBe('Decrypt succeeded without an attestation: its caller received key material');
    expect(report.changes).toEqual([expect.objectContaining({ eventName: 'PutKeyPolicy', policy: { images: [{ pcr0: v1.imageSha384 }], deniesUnattestedDecrypt: false, admitsAnyEnclave: true, admitsDebugEnclave: true } })]);
    const text = await run(['audit', '--key-id', keyArn, ...flags()], sim.principal('user/admin'));
    expect(text.code).toBe(4);
    expect(text.stdout).toContain('✘ 2 finding(s):\n  POLICY_CHANGED ');
    expect(text.stdout).toContain('does NOT deny an unattested Decrypt');
    // Acknowledging the policy change (by its request id) leaves the release.
    const acked = await audit(keyArn, '--ack', put.$metadata.requestId!);
    expect(acked.report.findings.map((f) => f.code)).toEqual(['UNATTESTED_RELEASE']);
    expect(acked.code).toBe(4);
    if (awsAvailable) {
      // The AWS CLI's view of the same trail: the flagged Decrypt is there, without recipient fields; the attested one has v1's image.
      const r = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['cloudtrail', 'lookup-events', '--lookup-attributes', `AttributeKey=ResourceName,AttributeValue=${keyArn}`]);
      const events = (JSON.parse(r.stdout).Events as Array<{ EventId: string; CloudTrailEvent: string }>).map((e) => JSON.parse(e.CloudTrailEvent));
      const flagged = events.find((e) => e.eventID === report.findings[1]!.eventID);
      expect(flagged).toMatchObject({ eventName: 'Decrypt', userIdentity: { type: 'AssumedRole' } });
      expect(flagged.errorCode).toBeUndefined();
      expect(flagged.additionalEventData).toBeUndefined();
      const attested = events.filter((e) => e.additionalEventData?.recipient && !e.errorCode);
      expect(attested.map((e) => Buffer.from(e.additionalEventData.recipient.attestationDocumentEnclaveImageDigest, 'base64').toString('hex'))).toEqual([v1.imageSha384]);
    }
  });

  it('flags an image the current policy does not admit, still calling the key', async () => {
    const { keyArn, blob } = await tskKey();
    await role.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(v2, rsaPair().spki) })).catch((err: Error) => expect(err.name).toBe('AccessDeniedException'));
    const { code, report } = await audit(keyArn);
    expect(code).toBe(4);
    expect(report.findings).toEqual([
      expect.objectContaining({ code: 'IMAGE_NOT_ADMITTED', eventName: 'Decrypt', message: expect.stringMatching(/^PCR0 abababababab…ababab, which the current key policy does not admit, still calls Decrypt \(refused: AccessDeniedException\)/) }),
    ]);
    expect(report.images.map((u) => [u.image.pcr0, u.admitted, u.releases, u.denied])).toEqual([
      [v1.imageSha384, true, 1, 0],
      ['ab'.repeat(48), false, 0, 1],
    ]);
  });

  it('flags a grant on the key (GRANT_CREATED), naming its grantee and operations; the record shows the grant id, never its token', async () => {
    const { keyArn } = await tskKey();
    const grantee = `arn:aws:iam::${sim.accountId}:user/other`;
    const grant = await admin.send(new CreateGrantCommand({ KeyId: keyArn, GranteePrincipal: grantee, Operations: ['Decrypt'] }));
    const { code, report } = await audit(keyArn);
    expect(code).toBe(4);
    expect(report.findings).toEqual([expect.objectContaining({ code: 'GRANT_CREATED', eventName: 'CreateGrant', message: `a grant gives ${grantee} Decrypt on the key` })]);
    const record = sim.audit.filter((e) => e.eventName === 'CreateGrant').at(-1)!;
    expect(record.responseElements).toMatchObject({ grantId: grant.GrantId });
    expect(JSON.stringify(record)).not.toContain(grant.GrantToken!);
  });

  it('refuses bad flags as usage errors, and reports a key it cannot read as an error', async () => {
    expect(await run(['audit', ...flags()], sim.principal('user/admin'))).toMatchObject({ code: 2, stderr: 'nitro-enclave audit: usage: --key-id is required\n' });
    expect(await run(['audit', '--key-id', 'x', '--since', '91d', ...flags()], sim.principal('user/admin'))).toMatchObject({
      code: 2,
      stderr: 'nitro-enclave audit: usage: --since: CloudTrail keeps 90 days of events for LookupEvents; give at most 90d\n',
    });
    expect(await run(['audit', '--key-id', 'x', '--since', 'yesterday', ...flags()], sim.principal('user/admin'))).toMatchObject({ code: 2, stderr: 'nitro-enclave audit: usage: --since expects a duration such as 30m, 24h or 7d, got "yesterday"\n' });
    const { keyArn } = await tskKey();
    // user/other has neither kms:DescribeKey on the key nor cloudtrail:LookupEvents
    const denied = await run(['audit', '--key-id', keyArn, ...flags()], sim.principal('user/other'));
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^nitro-enclave audit: AccessDeniedException: User: arn:aws:iam::111122223333:user\/other is not authorized to perform: kms:DescribeKey/);
  });
});
