/**
 * `rollout remove` as an operator under attack sees it: it never reports
 * success while the image stays admitted, attributes a re-signed EIF's uses
 * to the certificate that admitted them, and notices a concurrent put.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyWithoutPlaintextCommand, GetKeyPolicyCommand, PutKeyPolicyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKeyPolicy, type EnclaveImage } from '../../src/parent/key-policy.js';
import { createSimulatedEnclave, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { client, recipient, rsaPair } from '../helpers/kms.js';
import { runCli } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'nes-rollout-remove-'));
const v1 = createSimulatedEnclave();
const v2 = createSimulatedEnclave({ pcrs: { 0: 'ab'.repeat(48) }, pki: v1.pki });
const X = 'cd'.repeat(48);
const certA = '1a'.repeat(48);
const certB = '2b'.repeat(48);
const signedA = createSimulatedEnclave({ pcrs: { 0: X, 8: certA }, pki: v1.pki });
const signedB = createSimulatedEnclave({ pcrs: { 0: X, 8: certB }, pki: v1.pki });
const pcr1 = '11'.repeat(48);
let sim: KmsSimulator;
let caFile: string;
let admin: KMSClient;
let role: KMSClient;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [v1.trustAnchor] });
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

const policyFor = (images: EnclaveImage[]) => buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', images });
const newKey = async (images: EnclaveImage[]) => {
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policyFor(images)) }));
  const blob = (await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: KeyMetadata!.Arn!, KeySpec: 'AES_256' }))).CiphertextBlob!;
  return { keyArn: KeyMetadata!.Arn!, blob };
};
const policyOf = async (keyArn: string) => JSON.parse((await admin.send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }))).Policy!);
const run = (args: string[]) => runCli(args, sim.principal('user/admin'));
const flags = (keyArn: string) => ['--key-id', keyArn, '--endpoint', `https://localhost:${sim.port}`, '--ca-file', caFile, '--region', sim.region];
const short = (h: string) => `${h.slice(0, 12)}…${h.slice(-6)}`;

describe('rollout remove never reports success while the image stays admitted', () => {
  it('an image admitted as PCR0 + PCR1, named by PCR0 only: refused (exit 5), naming the admitted image; nothing changed', async () => {
    const { keyArn } = await newKey([{ pcr0: v1.imageSha384, pcr1 }, { pcr0: v2.imageSha384 }]);
    const r = await run(['rollout', 'remove', '--pcr0', v1.imageSha384, ...flags(keyArn)]);
    expect(r).toMatchObject({
      code: 5,
      stdout: '',
      stderr: `nitro-enclave rollout remove: refused: PCR0 ${short(v1.imageSha384)} would stay admitted by PCR0 ${short(v1.imageSha384)} + PCR1 ${short(pcr1)}; nothing changed. Name the admitted image exactly (with the same --pcr0/--pcr1/--pcr2), or give the build with --measurements to remove every admitted image it matches\n`,
    });
    expect(await policyOf(keyArn)).toEqual(policyFor([{ pcr0: v1.imageSha384, pcr1 }, { pcr0: v2.imageSha384 }]));
  });

  it('--measurements reads PCR0, PCR1, PCR2 (and PCR8) and removes every admitted image that admits the build; run again, no change', async () => {
    const { keyArn } = await newKey([{ pcr0: v1.imageSha384, pcr1 }, { pcr0: v1.imageSha384 }, { pcr0: v2.imageSha384 }]);
    const file = join(tmp, 'v1.json');
    writeFileSync(file, JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: v1.imageSha384, PCR1: pcr1, PCR2: '22'.repeat(48) } }));
    const r = await run(['rollout', 'remove', '--measurements', file, ...flags(keyArn)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`✔ removed PCR0 ${short(v1.imageSha384)} + PCR1 ${short(pcr1)} and PCR0 ${short(v1.imageSha384)}\n`);
    expect(await policyOf(keyArn)).toEqual(policyFor([{ pcr0: v2.imageSha384 }]));
    const again = await run(['rollout', 'remove', '--measurements', file, ...flags(keyArn)]);
    expect(again).toMatchObject({ code: 0, stdout: `✔ no change: the build PCR0 ${short(v1.imageSha384)} + PCR1 ${short(pcr1)} + PCR2 ${short('22'.repeat(48))} is not admitted by ${keyArn}\n` });
  });

  it('a signed build admitted by its certificate (PCR8): --measurements refuses rather than drop every EIF of that certificate silently or report success', async () => {
    const { keyArn } = await newKey([{ pcr8: certA }, { pcr0: v2.imageSha384 }]);
    const file = join(tmp, 'signed.json');
    writeFileSync(file, JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: X, PCR1: pcr1, PCR2: '22'.repeat(48), PCR8: certA } }));
    const r = await run(['rollout', 'remove', '--measurements', file, ...flags(keyArn)]);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe(`nitro-enclave rollout remove: refused: the build PCR0 ${short(X)} + PCR1 ${short(pcr1)} + PCR2 ${short('22'.repeat(48))} + PCR8 ${short(certA)} would stay admitted by PCR8 ${short(certA)}; nothing changed. A PCR8 image admits every EIF signed with its certificate: remove it with --pcr8 <hex> if that is what you mean\n`);
  });
});

describe('rollout remove --pcr8 sees the uses of that certificate, not of the same EIF signed with another', () => {
  it('refused while the A-signed replica received the key within the drain window, though a B-signed one of the same PCR0 was seen first', async () => {
    const { keyArn, blob } = await newKey([{ pcr8: certA }, { pcr8: certB }]);
    await role.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(signedB, rsaPair().spki) }));
    await role.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: recipient(signedA, rsaPair().spki) }));
    const r = await run(['rollout', 'remove', '--pcr8', certA, ...flags(keyArn)]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(new RegExp(`^nitro-enclave rollout remove: refused: PCR8 ${short(certA)} received key material at \\S+, within --drain-window 1h`));
    expect(await policyOf(keyArn)).toEqual(policyFor([{ pcr8: certA }, { pcr8: certB }]));
  });
});

describe('rollout and a concurrent PutKeyPolicy (KMS has no conditional put)', () => {
  it('a put that lands between its read and its put: refused before putting (exit 5)', async () => {
    const { keyArn } = await newKey([{ pcr0: v1.imageSha384 }, { pcr0: v2.imageSha384 }]);
    const v3 = [{ pcr0: v1.imageSha384 }, { pcr0: v2.imageSha384 }, { pcr0: 'ef'.repeat(48) }];
    // The first GetKeyPolicy is rollout's read; before its second (the check just before the put), another admin adds v3.
    sim.faults.before('GetKeyPolicy', () => void sim.faults.before('GetKeyPolicy', async () => void (await admin.send(new PutKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default', Policy: JSON.stringify(policyFor(v3)) })))));
    const r = await run(['rollout', 'remove', '--pcr0', v1.imageSha384, ...flags(keyArn)]);
    expect(r.stderr).toBe(`nitro-enclave rollout remove: refused: the key policy of ${keyArn} changed while this command ran (someone else put a policy); nothing changed: run \`nitro-enclave rollout status\` and try again\n`);
    expect(r.code).toBe(5);
    expect(await policyOf(keyArn)).toEqual(policyFor(v3));
  });

  it('a put that lands just before its own (after the last read): the trail shows it, and rollout fails instead of reporting success', async () => {
    const { keyArn } = await newKey([{ pcr0: v1.imageSha384 }, { pcr0: v2.imageSha384 }]);
    const v3 = [{ pcr0: v1.imageSha384 }, { pcr0: v2.imageSha384 }, { pcr0: 'ef'.repeat(48) }];
    sim.faults.before('PutKeyPolicy', async () => void (await admin.send(new PutKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default', Policy: JSON.stringify(policyFor(v3)) }))));
    const r = await run(['rollout', 'remove', '--pcr0', v1.imageSha384, ...flags(keyArn)]);
    const raced = sim.audit.filter((e) => e.eventName === 'PutKeyPolicy' && e.resources.some((x) => x.ARN === keyArn));
    expect(raced).toHaveLength(2);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('✔ removed');
    expect(r.stderr).toBe(
      `nitro-enclave rollout: Error: another PutKeyPolicy on ${keyArn} (event ${raced[0]!.eventID} by ${sim.principal('user/admin').arn}) ran around this command's put (request ${raced[1]!.requestID}): one change overwrote the other. Run \`nitro-enclave rollout status\` and redo what is missing\n`,
    );
  });
});
