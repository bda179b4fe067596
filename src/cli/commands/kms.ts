import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecapsulateCommand,
  DecryptCommand,
  DeriveSharedSecretCommand,
  DescribeKeyCommand,
  EncapsulateCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyPairCommand,
  GenerateDataKeyPairWithoutPlaintextCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GetKeyPolicyCommand,
  PutKeyPolicyCommand,
  ReEncryptCommand,
} from '@aws-sdk/client-kms';
import { KMS_OPERATIONS, kmsOperation, type KmsOperationClass, type KmsOperationInfo } from '../../internal/kms-operations.js';
import { evaluatePolicy, parsePolicy, type PolicyDocument } from '../../parent/index.js';
import { EXIT, UsageError, json, type Io } from '../io.js';
import { CLIENT_OPTIONS, kmsClient, type ClientFlags } from '../kms-client.js';
import { writeFileAtomic } from '../write-atomic.js';
import { POLICY_OPTIONS, policyFromFlags } from './policy.js';

const DEFAULT_ALIAS = 'alias/confidential-workflow-tsk';
/** The encryption context entry that names a rotated TSK's version: `tsk: v3`. */
export const ROTATION_CONTEXT_KEY = 'tsk';
/** `provision --rotate` writes the blob's key and context beside it, in `<blob>.context.json`. */
export const CONTEXT_SUFFIX = '.context.json';

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
       nitro-enclave provision --rotate --from <current blob> --out <new file> [--version <n>] [--encryption-context k=v]...

Generates the Trusted Session Key with GenerateDataKeyWithoutPlaintext (AES-256):
the plaintext never exists outside the enclave. Writes the CiphertextBlob to
<file> atomically (temp file + rename, mode 0600); refuses to overwrite
without --force.

With --rotate it generates the next TSK of a rotation: a new blob under the same
KMS key whose encryption context is the current blob's with ${ROTATION_CONTEXT_KEY}=v<n>. The
current blob's context is read from <current blob>${CONTEXT_SUFFIX} (written by a previous
--rotate), else it is the --encryption-context given (a blob without ${ROTATION_CONTEXT_KEY}=v<n> is
version 1). The new version is --version, else the current one plus 1. Writes
<new file> and <new file>${CONTEXT_SUFFIX} ({"keyArn","encryptionContext","version"}:
what the enclave passes to getKeyRing); never overwrites a file (no --force).

Options:
  --key-id <id>            key ARN or alias ARN (preferred), key id or alias (default ${DEFAULT_ALIAS}, resolved
                           in the account of these operator credentials); the enclave pins the ARN it prints
  --encryption-context k=v bind the blob to this context (repeatable; the enclave must pass the same);
                           with --rotate: the current blob's context, when it has no ${CONTEXT_SUFFIX} file
  --rotate                 generate the next version of a rotation (needs --from)
  --from <file>            the current (newest) blob of the rotation; it is read, never written
  --version <n>            the new version (an integer above the current one; default current + 1)
${CLIENT_HELP}`;

export const checkPolicyHelp = `Usage: nitro-enclave check-policy --blob <file> [--key-id <id>] [--destination-key-id <id>] [--encryption-context k=v]...

The seed's verification step, for every path to the key: every KMS operation
that can read the TSK or mint a blob of a key its caller knows (classes (a)
and (b) in docs/security.md, enumerated from the KMS API model) is sent without
attestation, with DryRun, so KMS decrypts, encrypts and moves nothing. Prints
one line per operation and PASS (exit 0) only when every one is denied; FAIL
(exit 3) when one would succeed or could not be decided. An operation KMS
refuses for this key's spec or usage (e.g. DeriveSharedSecret on a symmetric
key) cannot act on this key at all (spec and usage never change) and counts as
closed. An (a)/(b) operation whose request takes no DryRun (none in this SDK's
model today), or one the endpoint does not serve (a simulator without ML-KEM keys
answers UnknownOperationException to Encapsulate/Decapsulate), is judged from the
key policy instead (GetKeyPolicy): it must be denied by an explicit Deny to every
principal.
Run it with the credentials the enclave's parent uses (the instance role), and
once with an administrator's: both must PASS.

Options:
  --key-id <id>             the key the blob belongs to (default: read from KMS's answer)
  --destination-key-id <id> key to try re-encrypting to (default: the blob's own key)
  --encryption-context k=v  the blob's encryption context (repeatable)
${CLIENT_HELP}`;

type Outcome = 'denied' | 'allowed' | 'not-applicable' | 'inconclusive';
type Probe = { operation: string; action: string; class: KmsOperationClass; outcome: Outcome; message: string };

/** KMS refuses the operation for this key's spec or usage: it can never act on this key. */
const NOT_APPLICABLE = new Set(['InvalidKeyUsageException', 'UnsupportedOperationException']);

/** Sends one DryRun call: AccessDenied is a denial, DryRunOperationException means the call would have succeeded. */
async function dryRunProbe(op: KmsOperationInfo, send: () => Promise<object>, isDenial: (message: string) => boolean): Promise<Probe> {
  const probe = (outcome: Outcome, message: string): Probe => ({ operation: op.operation, action: op.action, class: op.class, outcome, message });
  try {
    const out = await send();
    for (const v of Object.values(out)) if (v instanceof Uint8Array) v.fill(0);
  } catch (err) {
    const e = err as Error;
    if (e.name === 'DryRunOperationException') return probe('allowed', e.message);
    if (e.name === 'AccessDeniedException') return probe(isDenial(e.message) ? 'denied' : 'inconclusive', e.message);
    if (NOT_APPLICABLE.has(e.name)) return probe('not-applicable', `${e.name}: ${e.message}`);
    return probe('inconclusive', `${e.name}: ${e.message}`);
  }
  // A KMS that ignored DryRun did the call: the key was reachable (anything secret in the answer is zeroed unread).
  return probe('allowed', 'KMS answered without honouring DryRun');
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

/** What `<blob>.context.json` holds: enough for the enclave to ask KMS for the blob's key. */
export interface BlobContextFile {
  keyArn: string;
  encryptionContext: Record<string, string>;
  version: number;
}

/** The version a context names (`tsk: v3` → 3); a context without one is version 1. */
function versionOf(ec: Record<string, string>, where: string): number {
  const v = ec[ROTATION_CONTEXT_KEY];
  if (v === undefined) return 1;
  const m = /^v([1-9][0-9]{0,8})$/.exec(v);
  if (!m) throw new UsageError(`${where}: ${ROTATION_CONTEXT_KEY}=${v} is not a rotation version (v1, v2, …)`);
  return Number(m[1]);
}

function readContextFile(file: string): BlobContextFile {
  let parsed: Partial<BlobContextFile>;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<BlobContextFile>;
  } catch (err) {
    throw new UsageError(`${file} is not a blob context file: ${(err as Error).message}`);
  }
  const ec = parsed.encryptionContext;
  if (typeof parsed.keyArn !== 'string' || !ec || typeof ec !== 'object' || Object.values(ec).some((v) => typeof v !== 'string')) throw new UsageError(`${file} must hold { "keyArn": string, "encryptionContext": { string: string }, "version": n }`);
  return { keyArn: parsed.keyArn, encryptionContext: ec, version: versionOf(ec, file) };
}

async function rotateCommand(values: ClientFlags & { out: string; from?: string; version?: string; force?: boolean; 'key-id'?: string; 'encryption-context'?: string[]; json?: boolean }, io: Io): Promise<number> {
  const { existsSync } = await import('node:fs');
  const { resolve } = await import('node:path');
  if (!values.from) throw new UsageError('--rotate needs --from <current blob>: the newest blob of the rotation');
  if (values.force) throw new UsageError('--rotate never overwrites a blob: --force is refused (the previous blobs stay until they are retired)');
  if (!existsSync(values.from)) throw new UsageError(`--from ${values.from} does not exist`);
  const sidecar = `${values.out}${CONTEXT_SUFFIX}`;
  if (resolve(values.out) === resolve(values.from)) throw new UsageError('--out must be a new file, not the --from blob');
  for (const f of [values.out, sidecar]) if (existsSync(f)) throw new UsageError(`${f} exists; --rotate never overwrites a file: choose a new --out`);
  const flags = contextArgs(values['encryption-context']);
  const fromFile = `${values.from}${CONTEXT_SUFFIX}`;
  const current = existsSync(fromFile) ? readContextFile(fromFile) : undefined;
  if (current && flags) throw new UsageError(`${fromFile} names the current blob's encryption context: drop --encryption-context`);
  const currentContext = current?.encryptionContext ?? flags ?? {};
  const currentVersion = current?.version ?? versionOf(currentContext, '--encryption-context');
  let version = currentVersion + 1;
  if (values.version !== undefined) {
    if (!/^[1-9][0-9]{0,8}$/.test(values.version)) throw new UsageError(`--version must be a positive integer, got "${values.version}"`);
    version = Number(values.version);
    if (version <= currentVersion) throw new UsageError(`--version ${version} is not above the current version ${currentVersion} (of ${values.from})`);
  }
  const keyId = values['key-id'] ?? current?.keyArn ?? DEFAULT_ALIAS;
  if (current && values['key-id'] && values['key-id'] !== current.keyArn) throw new UsageError(`--key-id ${values['key-id']} is not the key of ${values.from} (${current.keyArn}): a rotation stays on one KMS key`);
  const encryptionContext = { ...currentContext, [ROTATION_CONTEXT_KEY]: `v${version}` };
  const kms = kmsClient(values, io.env);
  let out;
  try {
    out = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: encryptionContext }));
  } finally {
    kms.destroy();
  }
  const { CiphertextBlob, KeyId } = out;
  writeFileAtomic(values.out, CiphertextBlob!, { mode: 0o600, force: false });
  const context: BlobContextFile = { keyArn: KeyId!, encryptionContext, version };
  writeFileAtomic(sidecar, `${JSON.stringify(context, null, 2)}\n`, { mode: 0o644, force: false });
  if (values.json) io.stdout(json({ file: values.out, contextFile: sidecar, bytes: CiphertextBlob!.length, keyArn: KeyId, encryptionContext, version, previousVersion: currentVersion, from: values.from }));
  else
    io.stdout(
      `✔ wrote TSK version ${version} (${CiphertextBlob!.length} bytes, mode 0600) to ${values.out}, its context to ${sidecar}\n` +
        `  key ${KeyId}, encryption context ${JSON.stringify(encryptionContext)}; no plaintext was returned or stored\n` +
        `  ${values.from} (version ${currentVersion}) is unchanged: keep it in the enclave's key ring until it is retired (docs/operations.md#rotate-the-tsk)\n`,
    );
  return EXIT.OK;
}

export async function provisionCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...CLIENT_OPTIONS,
      'key-id': { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      'encryption-context': { type: 'string', multiple: true },
      json: { type: 'boolean' },
      rotate: { type: 'boolean' },
      from: { type: 'string' },
      version: { type: 'string' },
    },
  });
  if (!values.out) throw new UsageError('--out <file> is required');
  if (values.rotate) return rotateCommand({ ...values, out: values.out }, io);
  if (values.from !== undefined || values.version !== undefined) throw new UsageError('--from and --version go with --rotate');
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

interface ProbeInput {
  blob: Uint8Array;
  keyId: string;
  destination: string | undefined;
  ec: Record<string, string> | undefined;
}

/**
 * One DryRun request per (a)/(b) operation, unattested. An (a)/(b) operation of the model that has no
 * request here is reported as unprobed (FAIL) until someone writes one (test/cli/cli.test.ts checks there
 * is one for each).
 */
export const PROBES: Record<string, (input: ProbeInput) => { command: unknown; isDenial?: (message: string) => boolean } | string> = {
  Decrypt: ({ blob, keyId, ec }) => ({ command: new DecryptCommand({ CiphertextBlob: blob, KeyId: keyId, DryRun: true, ...(ec ? { EncryptionContext: ec } : {}) }) }),
  // KMS authorizes ReEncrypt as kms:ReEncryptFrom on the blob's key, and kms:ReEncryptTo on the destination:
  // only a denial of ReEncryptFrom proves the blob cannot be moved to a key its holder controls.
  ReEncrypt: ({ blob, keyId, destination, ec }) =>
    destination
      ? { command: new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: destination, SourceKeyId: keyId, DryRun: true, ...(ec ? { SourceEncryptionContext: ec } : {}) }), isDenial: (m) => m.includes('perform: kms:ReEncryptFrom ') }
      : 'no destination key: pass --destination-key-id',
  Encrypt: ({ keyId, ec }) => ({ command: new EncryptCommand({ KeyId: keyId, Plaintext: new Uint8Array(32), DryRun: true, ...(ec ? { EncryptionContext: ec } : {}) }) }),
  GenerateDataKey: ({ keyId, ec }) => ({ command: new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', DryRun: true, ...(ec ? { EncryptionContext: ec } : {}) }) }),
  GenerateDataKeyPair: ({ keyId, ec }) => ({ command: new GenerateDataKeyPairCommand({ KeyId: keyId, KeyPairSpec: 'ECC_NIST_P256', DryRun: true, ...(ec ? { EncryptionContext: ec } : {}) }) }),
  GenerateDataKeyPairWithoutPlaintext: ({ keyId, ec }) => ({ command: new GenerateDataKeyPairWithoutPlaintextCommand({ KeyId: keyId, KeyPairSpec: 'ECC_NIST_P256', DryRun: true, ...(ec ? { EncryptionContext: ec } : {}) }) }),
  DeriveSharedSecret: ({ keyId }) => ({ command: new DeriveSharedSecretCommand({ KeyId: keyId, KeyAgreementAlgorithm: 'ECDH', PublicKey: PROBE_EC_PUBLIC_KEY, DryRun: true }) }),
  Encapsulate: ({ keyId }) => ({ command: new EncapsulateCommand({ KeyId: keyId, EncapsulationAlgorithm: 'ML_KEM', DryRun: true }) }),
  Decapsulate: ({ keyId }) => ({ command: new DecapsulateCommand({ KeyId: keyId, EncapsulationAlgorithm: 'ML_KEM', SharedSecretCiphertextBlob: new Uint8Array(1088), DryRun: true }) }),
};

/** A fixed P-256 public key (SubjectPublicKeyInfo, the generator point) for the DeriveSharedSecret probe: DryRun derives nothing. */
const PROBE_EC_PUBLIC_KEY = new Uint8Array(
  Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5', 'hex'),
);

/** An (a)/(b) operation that takes no DryRun: closed only if the key policy denies it explicitly to every principal, unattested. */
export function judgedFromPolicy(op: KmsOperationInfo, policy: PolicyDocument | Error, keyArn: string): Probe {
  const probe = (outcome: Outcome, message: string): Probe => ({ operation: op.operation, action: op.action, class: op.class, outcome, message });
  if (policy instanceof Error) return probe('inconclusive', `takes no DryRun, and the key policy could not be read: ${policy.message}`);
  const anyone = 'arn:aws:iam::000000000000:user/anyone';
  const open = op.actions.filter((action) => {
    const d = evaluatePolicy(policy, { principalArn: anyone, action, resource: keyArn, conditions: {} });
    return !(d.effect === 'Deny' && d.explicit);
  });
  return open.length === 0 ? probe('denied', 'takes no DryRun; the key policy denies it to every principal') : probe('allowed', `takes no DryRun, and the key policy has no Deny for ${open.join(', ')} to every principal`);
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
    const minting = KMS_OPERATIONS.filter((o) => o.class === 'plaintext' || o.class === 'ciphertext');
    // Decrypt first: it needs only the blob, and KMS's denial names the key every other probe is sent to.
    const decryptOp = kmsOperation('Decrypt')!;
    const decrypt = await dryRunProbe(
      decryptOp,
      () => kms.send(new DecryptCommand({ CiphertextBlob: blob, DryRun: true, ...(values['key-id'] ? { KeyId: values['key-id'] } : {}), ...(ec ? { EncryptionContext: ec } : {}) })),
      (m) => m.includes('perform: kms:Decrypt '),
    );
    const keyId = values['key-id'] ?? keyArnIn(decrypt.message);
    const destination = values['destination-key-id'] ?? keyId;
    let policy: PolicyDocument | Error | undefined;
    const probes: Probe[] = [];
    for (const op of minting) {
      if (op.operation === 'Decrypt') {
        probes.push(decrypt);
        continue;
      }
      const unprobed = (message: string): Probe => ({ operation: op.operation, action: op.action, class: op.class, outcome: 'inconclusive', message });
      if (!keyId) {
        probes.push(unprobed('the key is unknown (KMS named none): pass --key-id'));
        continue;
      }
      if (!op.takesDryRun) {
        policy ??= await kms.send(new GetKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default' })).then((r) => parsePolicy(r.Policy ?? '{}'), (err: Error) => err);
        probes.push(judgedFromPolicy(op, policy, keyId));
        continue;
      }
      const build = PROBES[op.operation];
      if (!build) {
        probes.push(unprobed('no probe request is written for this operation yet (src/cli/commands/kms.ts PROBES)'));
        continue;
      }
      const request = build({ blob, keyId, destination, ec });
      if (typeof request === 'string') {
        probes.push(unprobed(request));
        continue;
      }
      const probe = await dryRunProbe(op, () => kms.send(request.command as Parameters<typeof kms.send>[0]) as Promise<object>, request.isDenial ?? (() => true));
      if (probe.outcome === 'inconclusive' && probe.message.startsWith('UnknownOperationException')) {
        // KMS knows every operation of its model; an endpoint that does not (a simulator without ML-KEM keys)
        // cannot be probed, so the operation is judged as one without DryRun: from the key policy's explicit Deny.
        policy ??= await kms.send(new GetKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default' })).then((r) => parsePolicy(r.Policy ?? '{}'), (err: Error) => err);
        const judged = judgedFromPolicy(op, policy, keyId);
        probes.push({ ...judged, message: `this endpoint does not serve ${op.operation}; ${judged.message.replace('takes no DryRun; ', '').replace('takes no DryRun, and ', '')}` });
        continue;
      }
      probes.push(probe);
    }
    const pass = probes.every((p) => p.outcome === 'denied' || p.outcome === 'not-applicable');
    if (values.json) io.stdout(json({ result: pass ? 'PASS' : 'FAIL', keyArn: keyId ?? null, checks: probes }));
    else {
      for (const p of probes) {
        const what = p.operation === 'ReEncrypt' && destination ? `kms:ReEncrypt (to ${destination})` : p.action;
        if (p.outcome === 'denied') io.stdout(`✔ ${what.padEnd(42)} denied without attestation${p.message.startsWith('this endpoint') || p.message.startsWith('takes no DryRun') ? ` (${p.message})` : ''}\n`);
        else if (p.outcome === 'not-applicable') io.stdout(`✔ ${what.padEnd(42)} cannot act on this key (${p.message.split(':')[0]})\n`);
        else if (p.outcome === 'allowed' && (p.message.startsWith('this endpoint') || p.message.startsWith('takes no DryRun'))) io.stdout(`✘ ${what.padEnd(42)} not closed by the key policy: ${p.message}\n`);
        else if (p.outcome === 'allowed') io.stdout(`✘ ${what.padEnd(42)} WOULD SUCCEED without attestation with these credentials (DryRun: nothing was done)\n`);
        else if (p.operation === 'ReEncrypt' && p.message.includes('kms:ReEncryptTo'))
          io.stdout(`✘ ${what.padEnd(42)} was denied only for the destination key, so kms:ReEncryptFrom on the blob's key is untested: pass --destination-key-id of a key these credentials may re-encrypt to\n  ${p.message}\n`);
        else io.stdout(`✘ ${what.padEnd(42)} undecided: ${p.message}\n`);
      }
      const withoutDryRun = minting.filter((o) => !o.takesDryRun).map((o) => o.operation);
      const unserved = probes.filter((p) => p.message.startsWith('this endpoint does not serve')).map((p) => p.operation);
      io.stdout(
        `  ${probes.length} operations can read the TSK or mint a blob of a key their caller knows (classes (a)/(b), every one of the KMS API model); ` +
          (withoutDryRun.length ? `${withoutDryRun.join(', ')} take no DryRun and were judged from the key policy's explicit Deny statements` : 'each takes DryRun and was sent with it') +
          (unserved.length ? `; this endpoint does not serve ${unserved.join(', ')}: judged from the key policy's explicit Deny statements` : '') +
          '.\n  Replication, import and alias re-pointing (class (c)) are not probed: nitro-enclave policy denies them outright (docs/security.md).\n',
      );
      io.stdout(
        pass
          ? '✔ PASS: no unattested path to the key: nothing can read the TSK or mint a blob of a key its caller knows\n'
          : '✘ FAIL: the policy does not protect the TSK: deny every operation above without attestation for every principal (nitro-enclave policy does), and remove IAM grants that reach the key.\n',
      );
    }
    return pass ? EXIT.OK : EXIT.POLICY_FAIL;
  } finally {
    kms.destroy();
  }
}
