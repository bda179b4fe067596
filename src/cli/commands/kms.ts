import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CreateAliasCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, GenerateDataKeyWithoutPlaintextCommand, GetKeyPolicyCommand, PutKeyPolicyCommand, ReEncryptCommand } from '@aws-sdk/client-kms';
import { parsePolicy, type PolicyDocument } from '../../parent/index.js';
import { EXIT, UsageError, json, type Io } from '../io.js';
import { CLIENT_OPTIONS, kmsClient } from '../kms-client.js';
import { writeFileAtomic } from '../write-atomic.js';
import { POLICY_OPTIONS, policyFromFlags } from './policy.js';

const DEFAULT_ALIAS = 'alias/confidential-workflow-tsk';

const CLIENT_HELP = `  --region <region>        AWS region (default: the AWS SDK chain: AWS_REGION, profile…)
  --endpoint <url>         KMS endpoint override (e.g. the kms-simulator)
  --ca-file <pem>          extra CA to trust for TLS (the kms-simulator's CA)
  --json                   machine-readable output
Credentials come from the normal AWS SDK chain (environment, profile, instance role).
`;

export const setupHelp = `Usage: nitro-enclave setup [--alias <alias>] (--policy <file> | <policy options>) [options]

Idempotently creates the symmetric KMS key and its alias, and applies the key
policy; prints what it changed. Running it twice changes nothing.

Options:
  --alias <alias>          default ${DEFAULT_ALIAS}
  --description <text>     description of a newly created key
  --policy <file>          the policy JSON (e.g. from \`nitro-enclave policy\`); or give the
                           policy options of \`nitro-enclave policy\` directly
${CLIENT_HELP}`;

export const provisionHelp = `Usage: nitro-enclave provision --out <file> [--key-id <id>] [--encryption-context k=v]... [--force]

Generates the Trusted Session Key with GenerateDataKeyWithoutPlaintext (AES-256):
the plaintext never exists outside the enclave. Writes the CiphertextBlob to
<file> atomically (temp file + rename, mode 0600); refuses to overwrite
without --force.

Options:
  --key-id <id>            key ARN or alias ARN (preferred), key id or alias (default ${DEFAULT_ALIAS}, resolved
                           in the account of these operator credentials); the enclave pins the ARN it prints
  --encryption-context k=v bind the blob to this context (repeatable; the enclave must pass the same)
${CLIENT_HELP}`;

export const checkPolicyHelp = `Usage: nitro-enclave check-policy --blob <file> [--key-id <id>] [--destination-key-id <id>] [--encryption-context k=v]...

The seed's verification step, for every path to the key: an unattested Decrypt
of the blob AND a ReEncrypt of it to another key must both be denied. Both are
sent with DryRun, so KMS decrypts and moves nothing. Prints PASS (exit 0) only
when both are denied; FAIL (exit 3) when either would succeed, or when the
ReEncrypt test was inconclusive (the destination key refused kms:ReEncryptTo).
Run it with the credentials the enclave's parent uses (the instance role), and
once with an administrator's: both must PASS.

Options:
  --key-id <id>             the key the blob belongs to (default: read from KMS's answer)
  --destination-key-id <id> key to try re-encrypting to (default: the blob's own key)
  --encryption-context k=v  the blob's encryption context (repeatable)
${CLIENT_HELP}`;

type Probe = { action: 'kms:Decrypt' | 'kms:ReEncrypt'; outcome: 'denied' | 'allowed' | 'inconclusive'; message: string };

/** Sends one DryRun call: AccessDenied is a denial, DryRunOperationException means the call would have succeeded. */
async function dryRunProbe(action: Probe['action'], send: () => Promise<object>, sourceDenied: (message: string) => boolean): Promise<Probe> {
  try {
    const out = await send();
    (out as { Plaintext?: Uint8Array }).Plaintext?.fill(0);
  } catch (err) {
    const e = err as Error;
    if (e.name === 'DryRunOperationException') return { action, outcome: 'allowed', message: e.message };
    if (e.name === 'AccessDeniedException') return { action, outcome: sourceDenied(e.message) ? 'denied' : 'inconclusive', message: e.message };
    throw err;
  }
  // A KMS that ignored DryRun did the call: the key was reachable (any plaintext in the answer is dropped unread).
  return { action, outcome: 'allowed', message: 'KMS answered without honouring DryRun' };
}

const keyArnIn = (message: string) => /on resource: (arn:aws[\w-]*:kms:[^\s]+:key\/[^\s]+)/.exec(message)?.[1];

function contextArgs(values: string[] | undefined): Record<string, string> | undefined {
  if (!values?.length) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf('=');
    if (at < 1) throw new UsageError(`--encryption-context expects key=value, got "${v}"`);
    out[v.slice(0, at)] = v.slice(at + 1);
  }
  return out;
}

/** Key order does not matter to KMS, so policies compare as canonical JSON. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(value);
}

export async function setupCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...CLIENT_OPTIONS, ...POLICY_OPTIONS, alias: { type: 'string' }, description: { type: 'string' }, policy: { type: 'string' }, json: { type: 'boolean' } } });
  const alias = values.alias ?? DEFAULT_ALIAS;
  if (!/^alias\/[a-zA-Z0-9/_-]+$/.test(alias)) throw new UsageError('--alias must look like alias/name');
  let policy: PolicyDocument;
  if (values.policy) {
    policy = parsePolicy(readFileSync(values.policy, 'utf8'));
  } else policy = await policyFromFlags(values, io);
  const kms = kmsClient(values, io.env);
  const changes: string[] = [];
  let keyArn: string;
  let keyId: string;
  try {
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: alias }));
    keyArn = KeyMetadata!.Arn!;
    keyId = KeyMetadata!.KeyId!;
  } catch (err) {
    if ((err as Error).name !== 'NotFoundException') throw err;
    const { KeyMetadata } = await kms.send(
      new CreateKeyCommand({ Description: values.description ?? 'Trusted Session Key for Confidential Multi-Agent Workflow', KeyUsage: 'ENCRYPT_DECRYPT', KeySpec: 'SYMMETRIC_DEFAULT', Policy: JSON.stringify(policy) }),
    );
    keyArn = KeyMetadata!.Arn!;
    keyId = KeyMetadata!.KeyId!;
    changes.push(`created key ${keyArn} with the key policy`);
    await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: keyId }));
    changes.push(`created alias ${alias} → ${keyId}`);
  }
  if (!changes.length) {
    const { Policy } = await kms.send(new GetKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default' }));
    if (canonical(JSON.parse(Policy ?? '{}')) !== canonical(policy)) {
      await kms.send(new PutKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default', Policy: JSON.stringify(policy) }));
      changes.push(`updated the key policy of ${keyArn}`);
    }
  }
  kms.destroy();
  // What the enclave pins (getTrustedSessionKey refuses a bare alias): the alias ARN, or the key ARN for the exact key.
  const aliasArn = keyArn.replace(/:key\/[^:]+$/, `:${alias}`);
  const pin = `  pin in the enclave image: keyId '${aliasArn}' (or the exact key: '${keyArn}')\n`;
  if (values.json) io.stdout(json({ keyArn, alias, aliasArn, changed: changes.length > 0, changes }));
  else io.stdout((changes.length ? changes.map((c) => `✔ ${c}\n`).join('') : `✔ no change: ${alias} → ${keyArn} already has this policy\n`) + pin);
  return EXIT.OK;
}

export async function provisionCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...CLIENT_OPTIONS, 'key-id': { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' }, 'encryption-context': { type: 'string', multiple: true }, json: { type: 'boolean' } } });
  if (!values.out) throw new UsageError('--out <file> is required');
  const { existsSync } = await import('node:fs');
  if (existsSync(values.out) && !values.force) throw new UsageError(`${values.out} exists; refusing to overwrite it (use --force)`);
  const kms = kmsClient(values, io.env);
  const ec = contextArgs(values['encryption-context']);
  const { CiphertextBlob, KeyId } = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: values['key-id'] ?? DEFAULT_ALIAS, KeySpec: 'AES_256', ...(ec ? { EncryptionContext: ec } : {}) }));
  kms.destroy();
  writeFileAtomic(values.out, CiphertextBlob!, { mode: 0o600, force: Boolean(values.force) });
  if (values.json) io.stdout(json({ file: values.out, bytes: CiphertextBlob!.length, keyArn: KeyId }));
  else io.stdout(`✔ wrote the TSK's CiphertextBlob (${CiphertextBlob!.length} bytes, mode 0600) to ${values.out}\n  key ${KeyId}; no plaintext was returned or stored\n  the enclave must pin this key: keyId '${KeyId}' (or its alias ARN)\n`);
  return EXIT.OK;
}

export async function checkPolicyCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...CLIENT_OPTIONS, blob: { type: 'string' }, 'key-id': { type: 'string' }, 'destination-key-id': { type: 'string' }, 'encryption-context': { type: 'string', multiple: true }, json: { type: 'boolean' } },
  });
  if (!values.blob) throw new UsageError('--blob <file> is required');
  const blob = new Uint8Array(readFileSync(values.blob));
  const kms = kmsClient(values, io.env);
  const ec = contextArgs(values['encryption-context']);
  try {
    const keyId = values['key-id'];
    const decrypt = await dryRunProbe(
      'kms:Decrypt',
      () => kms.send(new DecryptCommand({ CiphertextBlob: blob, DryRun: true, ...(keyId ? { KeyId: keyId } : {}), ...(ec ? { EncryptionContext: ec } : {}) })),
      (m) => m.includes('perform: kms:Decrypt '),
    );
    const destination = values['destination-key-id'] ?? keyArnIn(decrypt.message) ?? keyId;
    // KMS authorizes ReEncrypt as kms:ReEncryptFrom on the blob's key, and kms:ReEncryptTo on the destination:
    // only a denial of ReEncryptFrom proves the blob cannot be moved to a key its holder controls.
    const reEncrypt: Probe = destination
      ? await dryRunProbe(
          'kms:ReEncrypt',
          () => kms.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: destination, DryRun: true, ...(keyId ? { SourceKeyId: keyId } : {}), ...(ec ? { SourceEncryptionContext: ec } : {}) })),
          (m) => m.includes('perform: kms:ReEncryptFrom '),
        )
      : { action: 'kms:ReEncrypt', outcome: 'inconclusive', message: 'no destination key: pass --destination-key-id or --key-id' };
    const probes = [decrypt, reEncrypt];
    const pass = probes.every((p) => p.outcome === 'denied');
    if (values.json) io.stdout(json({ result: pass ? 'PASS' : 'FAIL', keyArn: keyArnIn(decrypt.message) ?? keyId ?? null, checks: probes }));
    else {
      for (const p of probes) {
        const what = p.action === 'kms:Decrypt' ? 'an unattested Decrypt' : `a ReEncrypt to ${destination}`;
        if (p.outcome === 'denied') io.stdout(`✔ ${what} is denied\n  ${p.message}\n`);
        else if (p.outcome === 'allowed') io.stdout(`✘ ${what} WOULD SUCCEED without attestation with these credentials (DryRun: nothing was decrypted or moved)\n`);
        else io.stdout(`✘ ${what} was denied only for the destination key, so kms:ReEncryptFrom on the blob's key is untested: pass --destination-key-id of a key these credentials may re-encrypt to\n  ${p.message}\n`);
      }
      io.stdout(
        pass
          ? '✔ PASS: no unattested path to the key (Decrypt and ReEncrypt denied)\n'
          : '✘ FAIL: the policy does not protect the TSK: deny kms:Decrypt without attestation and kms:ReEncrypt* for every principal (nitro-enclave policy does), and remove IAM grants that reach the key.\n',
      );
    }
    return pass ? EXIT.OK : EXIT.POLICY_FAIL;
  } finally {
    kms.destroy();
  }
}
