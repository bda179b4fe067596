import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CreateAliasCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, GenerateDataKeyWithoutPlaintextCommand, GetKeyPolicyCommand, PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { parsePolicy, type PolicyDocument } from '../../kms/policy.js';
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

export const checkPolicyHelp = `Usage: nitro-enclave check-policy --blob <file> [--key-id <id>] [--encryption-context k=v]...

The seed's verification step: an unattested Decrypt of the blob must be denied.
Prints PASS (exit 0) on AccessDeniedException; prints FAIL and exits 3 if KMS
released the key (the plaintext is discarded at once). Run it with the
credentials the enclave's parent uses (the instance role), and once with an
administrator's: both must be denied.
${CLIENT_HELP}`;

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
  const { values } = parseArgs({ args: argv, options: { ...CLIENT_OPTIONS, blob: { type: 'string' }, 'key-id': { type: 'string' }, 'encryption-context': { type: 'string', multiple: true }, json: { type: 'boolean' } } });
  if (!values.blob) throw new UsageError('--blob <file> is required');
  const blob = new Uint8Array(readFileSync(values.blob));
  const kms = kmsClient(values, io.env);
  const ec = contextArgs(values['encryption-context']);
  try {
    const out = await kms.send(new DecryptCommand({ CiphertextBlob: blob, ...(values['key-id'] ? { KeyId: values['key-id'] } : {}), ...(ec ? { EncryptionContext: ec } : {}) }));
    out.Plaintext?.fill(0);
    const msg = `FAIL: KMS released the key WITHOUT attestation to these credentials (key ${out.KeyId}). The policy does not protect the TSK: add the explicit Deny (nitro-enclave policy does by default) and remove IAM grants of kms:Decrypt.`;
    if (values.json) io.stdout(json({ result: 'FAIL', keyArn: out.KeyId }));
    else io.stdout(`✘ ${msg}\n`);
    return EXIT.POLICY_FAIL;
  } catch (err) {
    const e = err as Error;
    if (e.name !== 'AccessDeniedException') throw err;
    if (values.json) io.stdout(json({ result: 'PASS', message: e.message }));
    else io.stdout(`✔ PASS: an unattested Decrypt is denied (AccessDeniedException)\n  ${e.message}\n`);
    return EXIT.OK;
  } finally {
    kms.destroy();
  }
}
