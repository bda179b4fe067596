/**
 * `nitro-enclave rollout` on the KMS simulator: image v1 → v1+v2 → v2, with
 * the drain check read from the simulator's CloudTrail (LookupEvents), and
 * the AWS CLI's view of the key policy.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyWithoutPlaintextCommand, GetKeyPolicyCommand, PutKeyPolicyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolloutCommand } from '../../src/cli/commands/rollout.js';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { createSimulatedEnclave, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { awsAgainst, awsAvailable } from '../helpers/aws-cli.js';
import { client, recipient, rsaPair } from '../helpers/kms.js';
import { runCli } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'nes-rollout-'));
const v1 = createSimulatedEnclave();
const v2 = createSimulatedEnclave({ pcrs: { 0: 'ab'.repeat(48) }, pki: v1.pki });
let sim: KmsSimulator;
let caFile: string;
let admin: KMSClient;
let role: KMSClient;
let keyArn: string;
let blob: Uint8Array;
let blobFile: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [v1.trustAnchor] });
  caFile = join(tmp, 'ca.pem');
  writeFileSync(caFile, sim.caPem);
  admin = client(sim, sim.principal('user/admin'));
  role = client(sim, sim.principal('EnclaveInstanceRole'));
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policyFor([{ pcr0: v1.imageSha384 }])) }));
  keyArn = KeyMetadata!.Arn!;
  blob = (await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyArn, KeySpec: 'AES_256' }))).CiphertextBlob!;
  blobFile = join(tmp, 'tsk.bin');
  writeFileSync(blobFile, blob);
});
afterAll(async () => {
  admin?.destroy();
  role?.destroy();
  await sim?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const policyFor = (images: Array<{ pcr0: string }>) => buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', images });

const run = (args: string[], now?: () => Date) => runCli(args, sim.principal('user/admin'), now ? { invoke: (a, io) => rolloutCommand(a.slice(1), io, now) } : {});

const flags = () => ['--key-id', keyArn, '--endpoint', `https://localhost:${sim.port}`, '--ca-file', caFile, '--region', sim.region];
const currentPolicy = async () => JSON.parse((await admin.send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }))).Policy!);
const attestedDecrypt = (enclave: typeof v1) => role.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(enclave, rsaPair().spki) }));
const puts = () => sim.audit.filter((e) => e.eventName === 'PutKeyPolicy').length;
const short = (h: string) => `PCR0 ${h.slice(0, 12)}…${h.slice(-6)}`;

describe('nitro-enclave rollout: v1 → v1+v2 → v2', () => {
  it('status: the admitted image and its last attested release from the trail', async () => {
    const before = await run(['rollout', 'status', ...flags()]);
    expect(before).toMatchObject({ code: 0, stderr: '' });
    expect(before.stdout).toMatch(new RegExp(`admits 1 image\\(s\\):\\n  ${short(v1.imageSha384)}  last release none since `));
    await attestedDecrypt(v1);
    const after = await run(['rollout', 'status', ...flags(), '--json']);
    const status = JSON.parse(after.stdout);
    expect(status.admitted).toEqual([{ image: { pcr0: v1.imageSha384 }, lastRelease: sim.audit.filter((e) => e.eventName === 'Decrypt' && !e.errorCode).at(-1)!.eventTime }]);
  });

  it('add: prints the diff, puts the policy (lockout check on), is idempotent; the AWS CLI sees the new image; v2 can then decrypt', async () => {
    await expect(attestedDecrypt(v2)).rejects.toMatchObject({ name: 'AccessDeniedException' });
    const dry = await run(['rollout', 'add', '--pcr0', v2.imageSha384, '--dry-run', ...flags()]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`+           "kms:RecipientAttestation:ImageSha384": "${v2.imageSha384}"`);
    expect(dry.stdout).toMatch(/dry run: would admit PCR0 .*; nothing changed\n$/);
    const putsBefore = puts();
    expect(puts()).toBe(putsBefore);
    const added = await run(['rollout', 'add', '--pcr0', v2.imageSha384, ...flags()]);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain(`✔ admitted ${short(v2.imageSha384)}\n  PutKeyPolicy request `);
    expect(await currentPolicy()).toEqual(policyFor([{ pcr0: v1.imageSha384 }, { pcr0: v2.imageSha384 }]));
    expect(puts()).toBe(putsBefore + 1);
    expect(sim.audit.filter((e) => e.eventName === 'PutKeyPolicy').at(-1)!.requestParameters.bypassPolicyLockoutSafetyCheck).toBe(false);
    const again = await run(['rollout', 'add', '--pcr0', v2.imageSha384, ...flags()]);
    expect(again).toMatchObject({ code: 0, stdout: `✔ no change: ${short(v2.imageSha384)} is already admitted by ${keyArn}\n` });
    expect(puts()).toBe(putsBefore + 1);
    const answer = await attestedDecrypt(v2);
    expect(answer.CiphertextForRecipient).toBeDefined();
    if (awsAvailable) {
      const r = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['kms', 'get-key-policy', '--key-id', keyArn, '--policy-name', 'default']);
      expect(JSON.parse(JSON.parse(r.stdout).Policy)).toEqual(policyFor([{ pcr0: v1.imageSha384 }, { pcr0: v2.imageSha384 }]));
    }
  }, 120_000);

  it('remove: refused while the trail shows v1 released within the drain window; allowed once the window has passed; idempotent', async () => {
    await attestedDecrypt(v1);
    const putsBefore = puts();
    const refused = await run(['rollout', 'remove', '--pcr0', v1.imageSha384, ...flags()]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(new RegExp(`^nitro-enclave rollout remove: refused: ${short(v1.imageSha384)} received key material at \\S+, within --drain-window 1h: its enclaves may still be running`));
    expect(puts()).toBe(putsBefore);
    // Two hours later (the CLI's clock; the trail is unchanged), nothing used v1 within the last hour.
    const later = () => new Date(Date.now() + 2 * 3600_000);
    const removed = await run(['rollout', 'remove', '--pcr0', v1.imageSha384, ...flags()], later);
    expect(removed.code).toBe(0);
    // Nothing to warn about: the trail shows this put, and the put before it set the policy it replaced (whatever the CLI's clock says).
    expect(removed.stderr).toBe('');
    expect(removed.stdout).toContain(`-           "kms:RecipientAttestation:ImageSha384": "${v1.imageSha384}"`);
    expect(removed.stdout).toContain(`✔ removed ${short(v1.imageSha384)}`);
    expect(await currentPolicy()).toEqual(policyFor([{ pcr0: v2.imageSha384 }]));
    await expect(attestedDecrypt(v1)).rejects.toMatchObject({ name: 'AccessDeniedException' });
    expect((await attestedDecrypt(v2)).CiphertextForRecipient).toBeDefined();
    expect(await run(['rollout', 'remove', '--pcr0', v1.imageSha384, ...flags()])).toMatchObject({ code: 0, stdout: `✔ no change: ${short(v1.imageSha384)} is not admitted by ${keyArn}\n` });
  });

  it('--force removes within the drain window (with a warning); the last image is never removed', async () => {
    await run(['rollout', 'add', '--pcr0', v1.imageSha384, ...flags()]);
    await attestedDecrypt(v1);
    const forced = await run(['rollout', 'remove', '--pcr0', v1.imageSha384, '--force', ...flags()]);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toMatch(/^warning: --force: PCR0 .* was used at \S+, within the drain window\n$/);
    const last = await run(['rollout', 'remove', '--pcr0', v2.imageSha384, '--force', ...flags()]);
    expect(last.code).toBe(5);
    expect(last.stderr).toBe(`nitro-enclave rollout remove: refused: ${short(v2.imageSha384)} is the only admitted image: removing it would leave the TSK to no enclave. Add its successor first (rollout add)\n`);
  });

  it('refuses to rewrite a policy it did not write (edited by hand), and bad flags', async () => {
    const edited = policyFor([{ pcr0: v2.imageSha384 }]);
    edited.Statement.push({ Sid: 'Added by hand', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${sim.accountId}:user/other` }, Action: 'kms:DescribeKey', Resource: '*' });
    await admin.send(new PutKeyPolicyCommand({ KeyId: keyArn, Policy: JSON.stringify(edited) }));
    const refused = await run(['rollout', 'add', '--pcr0', v1.imageSha384, ...flags()]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/^nitro-enclave rollout add: refused: the key policy of arn:aws:kms:\S+ is not one `nitro-enclave policy` writes/);
    expect(await currentPolicy()).toEqual(edited);
    await admin.send(new PutKeyPolicyCommand({ KeyId: keyArn, Policy: JSON.stringify(policyFor([{ pcr0: v2.imageSha384 }])) }));
    expect(await run(['rollout', 'add', ...flags()])).toMatchObject({ code: 2, stderr: 'nitro-enclave rollout: usage: name the image: --pcr0 <hex> [--pcr1 --pcr2], --pcr8 <hex>, or --measurements <file>\n' });
    expect(await run(['rollout', 'add', '--pcr0', v1.imageSha384, '--pcr8', v2.imageSha384, ...flags()])).toMatchObject({ code: 2, stderr: 'nitro-enclave rollout: usage: an image is PCR0 (with PCR1/PCR2) or PCR8, not both\n' });
    expect(await run(['rollout', 'remove', '--pcr0', v1.imageSha384, '--drain-window', '5m', ...flags()])).toMatchObject({ code: 2, stderr: 'nitro-enclave rollout: usage: --drain-window must be at least 15m: CloudTrail shows an event up to 15 minutes after the call\n' });
    expect(await run(['rollout', 'drop', ...flags()])).toMatchObject({ code: 2, stderr: 'nitro-enclave rollout: usage: give one of: rollout status | add | remove (see --help)\n' });
  });

  it.skipIf(!awsAvailable)('takes over a policy written by `nitro-enclave policy` and applied with the AWS CLI', { timeout: 120_000 }, async () => {
    const file = join(tmp, 'policy.json');
    expect((await run(['policy', '--account', sim.accountId, '--enclave-role', 'EnclaveInstanceRole', '--pcr0', v1.imageSha384, '--out', file])).code).toBe(0);
    const put = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['kms', 'put-key-policy', '--key-id', keyArn, '--policy-name', 'default', '--policy', `file://${file}`]);
    expect(put.code).toBe(0);
    const added = await run(['rollout', 'add', '--pcr0', v2.imageSha384, ...flags()]);
    expect(added.code).toBe(0);
    const r = await awsAgainst(sim, tmp, sim.principal('user/admin'), ['kms', 'get-key-policy', '--key-id', keyArn, '--policy-name', 'default', '--query', 'Policy', '--output', 'text']);
    expect(JSON.parse(r.stdout)).toEqual(policyFor([{ pcr0: v1.imageSha384 }, { pcr0: v2.imageSha384 }]));
    await admin.send(new PutKeyPolicyCommand({ KeyId: keyArn, Policy: JSON.stringify(policyFor([{ pcr0: v2.imageSha384 }])) }));
  });

  it('add --blob runs check-policy on the new policy', async () => {
    const r = await run(['rollout', 'add', '--pcr0', v1.imageSha384, '--blob', blobFile, ...flags()]);
    expect(r.stdout).toMatch(/✔ admitted PCR0 [^\n]*\n  PutKeyPolicy request [^\n]*\ncheck-policy:\n/);
    const probes = r.stdout.split('check-policy:\n')[1]!.split('\n').filter((l) => / kms:\w+/.test(l));
    for (const op of ['Decrypt', 'DeriveSharedSecret', 'Encrypt', 'GenerateDataKey', 'GenerateDataKeyPair', 'ReEncrypt']) {
      expect(probes.find((l) => new RegExp(`^✔ kms:${op}\\s`).test(l)), op).toMatch(/denied without attestation$/);
    }
    // check-policy's verdict is rollout's exit code: PASS, 0, on the policy rollout wrote.
    expect(probes.filter((l) => l.startsWith('✘'))).toEqual([]);
    expect(r.stdout).toMatch(/✔ PASS[^\n]*\n$/);
    expect(r.code).toBe(0);
    expect(await currentPolicy()).toEqual(policyFor([{ pcr0: v2.imageSha384 }, { pcr0: v1.imageSha384 }]));
  });
});
