import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateKeyCommand, DescribeKeyCommand, GenerateDataKeyWithoutPlaintextCommand, GetKeyPolicyCommand, KMSClient, PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { judgedFromPolicy, PROBES } from '../../src/cli/commands/kms.js';
import { KMS_OPERATIONS } from '../../src/internal/kms-operations.js';
import { fetchParentFile, fromParentCredentials } from '../../src/kms/parent-credentials.js';
import { createSimulatedEnclave, startKmsSimulator, type KmsSimulator, type SimulatedPrincipal } from '../../src/testing/index.js';
import { fixture, fixturesDir } from '../helpers/fixtures.js';
import { client } from '../helpers/kms.js';
import { seedAvailable, seedKeyPolicy } from '../helpers/seed.js';
import { runCli, type CliRun } from '../helpers/cli.js';

const here = dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'nes-cli-'));
const enclave = createSimulatedEnclave();
let sim: KmsSimulator;
let caFile: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  caFile = join(tmp, 'ca.pem');
  writeFileSync(caFile, sim.caPem);
});
afterAll(async () => {
  await sim.close();
  rmSync(tmp, { recursive: true, force: true });
});

type Run = CliRun;

const run = (args: string[], principal?: SimulatedPrincipal, stdin?: Uint8Array): Promise<Run> => runCli(args, principal, { stdin });

const kmsFlags = () => ['--endpoint', `https://localhost:${sim.port}`, '--ca-file', caFile, '--region', sim.region];
const admin = () => sim.principal('user/admin');
const role = () => sim.principal('EnclaveInstanceRole');

describe('verify on simulated documents', () => {
  it('refuses a debug-mode enclave unless --allow-debug, like the library', async () => {
    const debug = createSimulatedEnclave({ debugMode: true });
    const doc = join(tmp, 'debug.cbor');
    const root = join(tmp, 'debug-root.der');
    writeFileSync(doc, debug.attest());
    writeFileSync(root, debug.trustAnchor);
    const refused = await run(['verify', doc, '--trust-anchor', root]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^nitro-enclave verify: ERR_ATTESTATION_DEBUG_MODE: /);
    const allowed = await run(['verify', doc, '--trust-anchor', root, '--allow-debug', '--json']);
    expect(allowed.code).toBe(0);
    expect(JSON.parse(allowed.stdout)).toMatchObject({ verified: true, debugMode: true });
  });
});

describe.skipIf(!fixturesDir)('verify and inspect on real documents', () => {
  const file = () => join(fixturesDir!, 'nitro', 'blocky-nitrite-2024-09-07.cbor');
  const pcr0 = 'e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a';

  it('verifies at a given time with expected PCRs, in text and JSON', async () => {
    const text = await run(['verify', file(), '--at', '2024-09-07T14:37:40Z', '--pcr', `0=${pcr0}`]);
    expect(text).toMatchObject({ code: 0 });
    expect(text.stdout).toContain('✔ VERIFIED');
    expect(text.stdout).toContain(`PCR0         ${pcr0}`);
    const j = await run(['verify', file(), '--at', '2024-09-07T14:37:40Z', '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ verified: true, moduleId: 'i-0a22e5c5f24d22174-enc0191cceb4289903f', pcrs: { 0: pcr0 } });
  });

  it('fails with one line and the error code', async () => {
    const expired = await run(['verify', file()]);
    expect(expired.code).toBe(1);
    expect(expired.stderr.trim().split('\n')).toHaveLength(1);
    expect(expired.stderr).toMatch(/^nitro-enclave verify: ERR_ATTESTATION_CERT_EXPIRED: /);
    const mismatch = await run(['verify', file(), '--at', '2024-09-07T14:37:40Z', '--pcr', `0=${'00'.repeat(48)}`]);
    expect(mismatch).toMatchObject({ code: 1, stderr: expect.stringContaining('ERR_ATTESTATION_PCR_MISMATCH') });
    expect((await run(['verify', file(), '--pcr', '0=abc'])).code).toBe(2);
  });

  it('reads base64 from standard input', async () => {
    const b64 = new TextEncoder().encode(Buffer.from(fixture('nitro', 'blocky-nitrite-2024-09-07.cbor')).toString('base64'));
    expect((await run(['verify', '-', '--at', '2024-09-07T14:37:40Z'], undefined, b64)).code).toBe(0);
  });

  it('inspects without verifying, and says so loudly', async () => {
    const r = await run(['inspect', file(), '--json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('NOT VERIFIED');
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: false, pcrs: { 0: pcr0 } });
  });
});

describe('policy', () => {
  const base = ['policy', '--account', '111122223333', '--enclave-role', 'EnclaveInstanceRole'];

  it('writes the seed-shaped policy from --pcr0, --measurements and --document', async () => {
    const fromPcr = JSON.parse((await run([...base, '--pcr0', enclave.imageSha384.toUpperCase()])).stdout);
    expect(fromPcr.Statement.map((s: { Sid: string }) => s.Sid)).toEqual([
      'Enable IAM User Permissions',
      'Allow Enclave Decrypt',
      'Allow Enclave Key Audit',
      'Allow Key Administrators',
      'Deny Without Admitted Attestation',
      'Deny Without Any Attestation',
      'Deny Reading Or Minting Key Material',
      'Deny Moving Key Material Or Alias',
    ]);
    expect(fromPcr.Statement[1].Condition).toEqual({ StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': enclave.imageSha384 } });
    // nitro-cli's output shape, with the simulated image's PCR0 (every simulated enclave has the same default image).
    const measurements = join(here, '..', 'fixtures', 'nitro-cli-build-enclave.json');
    expect(JSON.parse(readFileSync(measurements, 'utf8')).Measurements.PCR0).toBe(enclave.imageSha384);
    expect(JSON.parse((await run([...base, '--measurements', measurements])).stdout)).toEqual(fromPcr);
    const doc = join(tmp, 'doc.cbor');
    writeFileSync(doc, enclave.attest());
    const fromDoc = await run([...base, '--document', doc]);
    expect(JSON.parse(fromDoc.stdout)).toEqual(fromPcr);
    expect(fromDoc.stderr).toContain('unverified');
    const extra = JSON.parse((await run([...base, '--pcr0', enclave.imageSha384, '--pcr', `8=${'cc'.repeat(48)}`, '--admin', 'role/KeyAdmin'])).stdout);
    expect(extra.Statement[1].Condition.StringEqualsIgnoreCase['kms:RecipientAttestation:PCR8']).toBe('cc'.repeat(48));
    expect(extra.Statement[3].Principal.AWS).toBe('arn:aws:iam::111122223333:role/KeyAdmin');
    expect(extra.Statement).toHaveLength(9); // one Deny per attestation condition, one for no attestation, one for minting, one for moving
    const actions = JSON.parse((await run([...base, '--pcr0', enclave.imageSha384, '--enclave-action', 'kms:Decrypt', '--enclave-action', 'kms:GenerateDataKey'])).stdout);
    expect(actions.Statement[1].Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expect(actions.Statement.find((s: { Sid: string }) => s.Sid === 'Deny Reading Or Minting Key Material')).toMatchObject({ Effect: 'Deny', Principal: { AWS: '*' }, Action: expect.arrayContaining(['kms:Encrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo']) });
    const wildcard = await run([...base, '--pcr0', enclave.imageSha384, '--enclave-action', 'kms:GenerateDataKey*']);
    expect(wildcard).toMatchObject({ code: 2, stderr: expect.stringContaining('no wildcards') });
  });

  it('admits several images: repeated --pcr0 / --measurements, --pcr8 and --image, one Allow each', async () => {
    const measurements = join(here, '..', 'fixtures', 'nitro-cli-build-enclave.json');
    const other = 'cd'.repeat(48);
    const pcr8 = 'ee'.repeat(48);
    const r = await run([...base, '--measurements', measurements, '--pcr0', other, '--pcr8', pcr8, '--image', `pcr0=${'ab'.repeat(48)},pcr1=${'11'.repeat(48)}`]);
    expect(r.code).toBe(0);
    const policy = JSON.parse(r.stdout);
    expect(policy.Statement.filter((s: { Sid: string }) => s.Sid.startsWith('Allow Enclave Decrypt')).map((s: { Condition: object }) => s.Condition)).toEqual([
      { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': other } },
      { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': enclave.imageSha384 } },
      { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR8': pcr8 } },
      { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': 'ab'.repeat(48), 'kms:RecipientAttestation:PCR1': '11'.repeat(48) } },
    ]);
    expect(policy.Statement.filter((s: { Sid: string }) => s.Sid.startsWith('Deny Without Admitted')).map((s: { Condition: object }) => s.Condition)).toEqual([
      { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': [enclave.imageSha384, 'ab'.repeat(48), other].sort(), 'kms:RecipientAttestation:PCR8': pcr8 } },
      { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': [enclave.imageSha384, other].sort(), 'kms:RecipientAttestation:PCR1': '11'.repeat(48), 'kms:RecipientAttestation:PCR8': pcr8 } },
    ]);
    expect(await run([...base, '--pcr0', other, '--pcr0', enclave.imageSha384, '--pcr', `8=${pcr8}`])).toMatchObject({ code: 2, stderr: expect.stringContaining('--pcr adds conditions to the one') });
    expect(await run([...base, '--image', 'pcr3=ab'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--image expects pcr0=<hex>') });
    expect(await run([...base, '--pcr8', '00'.repeat(48)])).toMatchObject({ code: 2, stderr: expect.stringContaining('pcr8 is all zeros') });
  });

  it('pcr8 --cert prints what nitro-cli pcr --signing-certificate prints, and feeds --pcr8', async () => {
    const { execFileSync } = await import('node:child_process');
    const key = join(tmp, 'signing-key.pem');
    const cert = join(tmp, 'signing-cert.pem');
    execFileSync('openssl', ['ecparam', '-name', 'secp384r1', '-genkey', '-out', key]);
    execFileSync('openssl', ['req', '-new', '-x509', '-key', key, '-sha384', '-days', '30', '-subj', '/CN=signer', '-out', cert]);
    const der = execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER']);
    const inner = execFileSync('openssl', ['dgst', '-sha384', '-binary'], { input: der });
    const expected = execFileSync('openssl', ['dgst', '-sha384', '-r'], { input: Buffer.concat([Buffer.alloc(48), inner]) }).toString().split(' ')[0]!;
    expect(await run(['pcr8', '--cert', cert])).toMatchObject({ code: 0, stdout: `${expected}\n` });
    expect(JSON.parse((await run(['pcr8', '--cert', cert, '--json'])).stdout)).toEqual({ PCR8: expected });
    expect(await run(['pcr8', '--cert', key])).toMatchObject({ code: 2, stderr: expect.stringContaining('certificate must be an X.509 certificate') });
    expect(await run(['pcr8'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--cert <file> is required') });
    const policy = JSON.parse((await run([...base, '--pcr8', expected])).stdout);
    expect(policy.Statement[1].Condition).toEqual({ StringEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR8': expected } });
  });

  it('refuses an all-zero PCR0 with an explanation, unless told otherwise', async () => {
    const r = await run([...base, '--pcr0', '00'.repeat(48)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/debug-mode enclave/);
    expect((await run([...base, '--pcr0', '00'.repeat(48), '--allow-debug-pcr0'])).code).toBe(0);
  });

  it('validates its input', async () => {
    expect((await run([...base, '--pcr0', 'abcd'])).stderr).toMatch(/96 hex characters/);
    expect((await run([...base])).code).toBe(2);
    expect((await run(['policy', '--enclave-role', 'x', '--pcr0', enclave.imageSha384])).code).toBe(2);
    expect((await run([...base, '--pcr0', enclave.imageSha384, '--no-deny-unattested'])).stdout).not.toContain('Deny');
  });
});

describe('setup, provision and check-policy against the KMS simulator', () => {
  const policyArgs = (pcr0 = enclave.imageSha384) => ['--account', sim.accountId, '--enclave-role', 'EnclaveInstanceRole', '--pcr0', pcr0];

  it('setup is idempotent and reports what it changed', async () => {
    const first = await run(['setup', ...kmsFlags(), ...policyArgs()], admin());
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/created key arn:aws:kms:us-east-1:111122223333:key\/.+ with the key policy\n✔ created alias alias\/confidential-workflow-tsk/);
    expect(first.stdout).toContain("pin in the enclave image: keyId 'arn:aws:kms:us-east-1:111122223333:alias/confidential-workflow-tsk'");
    const second = await run(['setup', ...kmsFlags(), ...policyArgs(), '--json'], admin());
    expect(JSON.parse(second.stdout)).toMatchObject({ changed: false, changes: [], aliasArn: 'arn:aws:kms:us-east-1:111122223333:alias/confidential-workflow-tsk' });
    const third = await run(['setup', ...kmsFlags(), ...policyArgs('ab'.repeat(48))], admin());
    expect(third.stdout).toMatch(/updated the key policy/);
    expect((await run(['setup', ...kmsFlags(), ...policyArgs()], admin())).stdout).toMatch(/updated the key policy/);
  });

  it('provision writes the ciphertext atomically with mode 0600 and refuses to overwrite', async () => {
    const out = join(tmp, 'blobs', 'tsk.bin');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dirname(out), { recursive: true });
    const r = await run(['provision', ...kmsFlags(), '--out', out], admin());
    expect(r.code).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readdirSync(dirname(out))).toEqual(['tsk.bin']);
    expect(r.stdout).toContain('no plaintext was returned or stored');
    const again = await run(['provision', ...kmsFlags(), '--out', out], admin());
    expect(again).toMatchObject({ code: 2, stderr: expect.stringContaining('refusing to overwrite') });
    const before = readFileSync(out);
    expect((await run(['provision', ...kmsFlags(), '--out', out, '--force'], admin())).code).toBe(0);
    expect(readFileSync(out).equals(before)).toBe(false);
  });

  it('check-policy probes every (a)/(b) operation of the model with DryRun: FAIL on the previous policy (Encrypt, GenerateDataKey open to IAM), PASS on the hardened one as the role and as an admin', async () => {
    const blob = join(tmp, 'blobs', 'tsk.bin');
    const a = client(sim, admin());
    const { KeyMetadata } = await a.send(new DescribeKeyCommand({ KeyId: 'alias/confidential-workflow-tsk' }));
    const hardened = JSON.parse((await a.send(new GetKeyPolicyCommand({ KeyId: KeyMetadata!.KeyId }))).Policy!) as { Statement: Array<{ Sid: string; Effect: string; Action: string | string[] }> };
    const put = (statements: object[]) => a.send(new PutKeyPolicyCommand({ KeyId: KeyMetadata!.KeyId, Policy: JSON.stringify({ ...hardened, Statement: statements }) }));
    // The policy buildKeyPolicy wrote before: Decrypt gated on attestation, ReEncrypt denied, nothing else.
    const previous = [
      ...hardened.Statement.filter((s) => s.Effect === 'Allow'),
      ...hardened.Statement.filter((s) => s.Sid === 'Deny Without Admitted Attestation' || s.Sid === 'Deny Without Any Attestation').map((s) => ({ ...s, Action: 'kms:Decrypt' })),
      { Sid: 'Deny ReEncrypt For Everyone', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:ReEncrypt*', Resource: '*' },
    ];
    await put(previous);
    const open = await run(['check-policy', ...kmsFlags(), '--blob', blob, '--json'], admin());
    expect(open.code).toBe(3);
    const report = JSON.parse(open.stdout) as { result: string; checks: Array<{ operation: string; outcome: string }> };
    expect(report.result).toBe('FAIL');
    const outcome = Object.fromEntries(report.checks.map((c) => [c.operation, c.outcome]));
    expect(outcome).toMatchObject({ Decrypt: 'denied', ReEncrypt: 'denied', Encrypt: 'allowed', GenerateDataKey: 'allowed', GenerateDataKeyPair: 'allowed' });
    // One line per (a)/(b) operation of the model, in the model's order.
    expect(report.checks.map((c) => c.operation)).toEqual(KMS_OPERATIONS.filter((o) => o.class === 'plaintext' || o.class === 'ciphertext').map((o) => o.operation));
    await put(hardened.Statement);
    for (const who of [role(), admin()]) {
      const r = await run(['check-policy', ...kmsFlags(), '--blob', blob], who);
      expect(r.stdout).toContain('✔ PASS: no unattested path to the key');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/✔ kms:Decrypt +denied without attestation\n/);
      expect(r.stdout).toMatch(/✔ kms:Encrypt +denied without attestation\n/);
      expect(r.stdout).toMatch(/✔ kms:ReEncrypt \(to arn:aws:kms:us-east-1:111122223333:key\/.+\) +denied without attestation\n/);
      expect(r.stdout).toContain('9 operations can read the TSK or mint a blob of a key their caller knows (classes (a)/(b), every one of the KMS API model); each takes DryRun and was sent with it');
      // The simulator has no ML-KEM keys and does not serve Encapsulate/Decapsulate: those are judged from the key policy.
      expect(r.stdout).toMatch(/✔ kms:Encapsulate +denied without attestation \(this endpoint does not serve Encapsulate; the key policy denies it to every principal\)\n/);
    }
  });

  it('check-policy never decrypts, encrypts or moves anything: every call it makes is a DryRun', async () => {
    const before = sim.audit.length;
    await run(['check-policy', ...kmsFlags(), '--blob', join(tmp, 'blobs', 'tsk.bin')], admin());
    const calls = sim.audit.slice(before);
    // Decrypt first (KMS's denial names the key the others are sent to), then the rest in the model's order.
    const minting = KMS_OPERATIONS.filter((o) => o.class === 'plaintext' || o.class === 'ciphertext').map((o) => o.operation);
    // The one call without DryRun reads the key policy, for the operations the simulator does not serve.
    // Decrypt first; the key policy is read once, at the first operation the simulator does not serve (Decapsulate).
    expect(calls.map((e) => e.eventName)).toEqual(['Decrypt', 'Decapsulate', 'GetKeyPolicy', ...minting.filter((op) => op !== 'Decrypt' && op !== 'Decapsulate')]);
    for (const e of calls.filter((x) => x.errorCode !== 'UnknownOperationException' && x.eventName !== 'GetKeyPolicy')) expect(e.requestParameters.dryRun, e.eventName).toBe(true);
    expect(calls.filter((x) => !(x.errorCode === 'UnknownOperationException' || x.requestParameters.dryRun === true)).map((e) => e.eventName)).toEqual(['GetKeyPolicy']);
  });

  it('check-policy judges an (a)/(b) operation without DryRun (a future one) from the key policy: closed only by an explicit Deny to every principal', () => {
    const future = { operation: 'MintSomething', action: 'kms:MintSomething', actions: ['kms:MintSomething'], class: 'ciphertext' as const, takesRecipient: false, takesDryRun: false, why: 'hypothetical' };
    const key = 'arn:aws:kms:us-east-1:111122223333:key/k';
    const allowAll = { Statement: [{ Effect: 'Allow' as const, Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' }] };
    expect(judgedFromPolicy(future, allowAll, key)).toMatchObject({ outcome: 'allowed', message: 'takes no DryRun, and the key policy has no Deny for kms:MintSomething to every principal' });
    const denied = { Statement: [...allowAll.Statement, { Effect: 'Deny' as const, Principal: { AWS: '*' }, Action: 'kms:MintSomething', Resource: '*' }] };
    expect(judgedFromPolicy(future, denied, key)).toMatchObject({ outcome: 'denied' });
    expect(judgedFromPolicy(future, new Error('AccessDenied'), key)).toMatchObject({ outcome: 'inconclusive' });
  });

  it('check-policy has a DryRun probe for every (a)/(b) operation of the model that takes DryRun', () => {
    const minting = KMS_OPERATIONS.filter((o) => o.class === 'plaintext' || o.class === 'ciphertext');
    expect(minting.filter((o) => o.takesDryRun && !(o.operation in PROBES)).map((o) => o.operation)).toEqual([]);
    expect(Object.keys(PROBES).filter((op) => !minting.some((o) => o.operation === op))).toEqual([]);
  });

  it.skipIf(!seedAvailable)("check-policy FAILs loudly on the seed's policy when IAM grants the admin kms:*", async () => {
    const a = client(sim, admin());
    const keyId = (await a.send(new CreateKeyCommand({ Policy: seedKeyPolicy(sim.accountId, enclave.imageSha384) }))).KeyMetadata!.KeyId!;
    const { CiphertextBlob } = await a.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    const file = join(tmp, 'seed.bin');
    writeFileSync(file, CiphertextBlob!);
    // The role has no IAM grant here, so KMS denies it every probe; but Encapsulate/Decapsulate, which the simulator
    // does not serve, must be judged from the key policy, which the seed's policy does not let the role read: FAIL, undecided.
    const asRole = await run(['check-policy', ...kmsFlags(), '--blob', file], role());
    expect(asRole.code).toBe(3);
    expect(asRole.stdout).toMatch(/✔ kms:Decrypt +denied without attestation\n/);
    expect(asRole.stdout).toMatch(/✔ kms:Encrypt +denied without attestation\n/);
    expect(asRole.stdout).toMatch(/✘ kms:Encapsulate +undecided: this endpoint does not serve Encapsulate; the key policy could not be read: User: .+ is not authorized to perform: kms:GetKeyPolicy /);
    // Decrypt would succeed, so KMS's answer names no key: without --key-id the other probes are undecided.
    expect((await run(['check-policy', ...kmsFlags(), '--blob', file], admin())).stdout).toMatch(/✘ kms:Encrypt +undecided: the key is unknown \(KMS named none\): pass --key-id\n/);
    const r = await run(['check-policy', ...kmsFlags(), '--blob', file, '--key-id', keyId], admin());
    expect(r.code).toBe(3);
    for (const action of ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyPair']) {
      expect(r.stdout).toMatch(new RegExp(`✘ ${action} +WOULD SUCCEED without attestation with these credentials \\(DryRun: nothing was done\\)\\n`));
    }
    // The admin may read the policy: the seed's has no Deny, so the unserved ones are not closed either.
    expect(r.stdout).toMatch(/✘ kms:Encapsulate +not closed by the key policy: this endpoint does not serve Encapsulate; the key policy has no Deny for kms:Encapsulate to every principal\n/);
    expect(r.stdout).toContain('✘ FAIL: the policy does not protect the TSK');
  });

  it('check-policy FAILs on a deliberately open policy', async () => {
    const a = client(sim, admin());
    const open = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' }] };
    const keyId = (await a.send(new CreateKeyCommand({ Policy: JSON.stringify(open) }))).KeyMetadata!.KeyId!;
    const file = join(tmp, 'open.bin');
    writeFileSync(file, (await a.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256' }))).CiphertextBlob!);
    const r = await run(['check-policy', ...kmsFlags(), '--blob', file, '--json'], role());
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ result: 'FAIL' });
  });
});

describe('the installed bin', () => {
  it('runs credentials-server as a process: credentials from the SDK chain and a file, to the enclave side', async () => {
    const bin = join(here, '..', '..', 'dist', 'cli', 'bin.js');
    const sock = join(tmp, 'parent-bin.sock');
    const blobFile = join(tmp, 'blob-for-parent.bin');
    writeFileSync(blobFile, Buffer.from('not a secret: a ciphertext blob'));
    const env = { ...process.env, AWS_ACCESS_KEY_ID: 'ASIAFROMENVCHAIN0001', AWS_SECRET_ACCESS_KEY: 'env-secret-value', AWS_SESSION_TOKEN: 'env-session-token' };
    const child = spawn(process.execPath, [bin, 'credentials-server', '--enclave-cid', '16', '--listen', `unix:${sock}`, '--file', `tsk=${blobFile}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    try {
      const end = Date.now() + 10_000;
      while (!existsSync(sock) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
      const creds = await fromParentCredentials({ address: { family: 'unix', path: sock } })();
      expect(creds).toMatchObject({ accessKeyId: 'ASIAFROMENVCHAIN0001', secretAccessKey: 'env-secret-value', sessionToken: 'env-session-token' });
      expect(Buffer.from(await fetchParentFile('tsk', { address: { family: 'unix', path: sock } })).toString()).toBe('not a secret: a ciphertext blob');
      await expect(fetchParentFile('other', { address: { family: 'unix', path: sock } })).rejects.toMatchObject({ code: 'ERR_PARENT_NOT_FOUND' });
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('close', r));
    }
    expect(stderr).toContain('served credentials for ASIA… to a local process (unix socket: no CID, no check)');
    expect(stderr).toContain('WARNING: listening on unix:');
    expect(stderr).toContain('Any local process that can open this socket may connect');
    expect(stderr).toContain('(--enclave-cid 16 is not used)');
    expect(stderr).not.toMatch(/serving to enclave CID|CID 16 \(|peer CID checked/);
    expect(stderr).toContain('served file tsk');
    expect(stderr).not.toMatch(/env-secret-value|env-session-token/);
  });

  it('runs kms-simulator as a process, prints how to use it, and serves the other commands', async () => {
    const bin = join(here, '..', '..', 'dist', 'cli', 'bin.js');
    expect(existsSync(bin)).toBe(true);
    const caOut = join(tmp, 'sim-ca.pem');
    const child = spawn(process.execPath, [bin, 'kms-simulator', '--json', '--ca-out', caOut], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const info = await new Promise<{ endpoint: string; region: string; principals: Array<{ arn: string; accessKeyId: string; secretAccessKey: string }> }>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          try {
            resolve(JSON.parse(out));
          } catch {
            /* wait for the rest */
          }
        });
        child.on('exit', (code) => reject(new Error(`simulator exited ${code}`)));
      });
      expect(info.region).toBe('us-east-1');
      const adminCreds = info.principals.find((p) => p.arn.endsWith('user/admin'))!;
      const r = await run(['setup', '--endpoint', info.endpoint, '--ca-file', caOut, '--region', info.region, '--account', '111122223333', '--enclave-role', 'EnclaveInstanceRole', '--pcr0', enclave.imageSha384], {
        ...adminCreds,
        arn: adminCreds.arn,
      });
      expect(r.stdout).toContain('created alias');
    } finally {
      child.kill('SIGTERM');
    }
    const help = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, [bin, 'provision', '--help']);
      let t = '';
      c.stdout.on('data', (d) => (t += d));
      c.on('close', () => resolve(t));
    });
    expect(help).toContain('GenerateDataKeyWithoutPlaintext');
  });
});
