import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseAttestationDocument } from '../../attestation/index.js';
import { buildKeyPolicy, type EnclaveImage, type PolicyDocument } from '../../parent/index.js';
import { EXIT, UsageError, json, pcrArgs, readInput, type Io } from '../io.js';

export const policyHelp = `Usage: nitro-enclave policy --account <id> --enclave-role <role> <images> [options]

Writes the KMS key policy of the seed's shape: the account root, the enclave
role allowed kms:Decrypt only with an attestation of an admitted image, and key
administrators; plus, by default, explicit Deny statements for every principal,
derived from the classification of every KMS operation (docs/security.md):
  - the operations that read or mint key material and take a Recipient
    (Decrypt, GenerateDataKey, GenerateDataKeyPair, DeriveSharedSecret) unless
    the attestation matches an admitted image;
  - those that cannot take a Recipient (Encrypt, ReEncryptFrom/To,
    GenerateDataKeyPairWithoutPlaintext, Encapsulate, Decapsulate) outright;
  - replication, import and alias re-pointing (ReplicateKey,
    UpdatePrimaryRegion, GetParametersForImport, ImportKeyMaterial,
    DeleteImportedKeyMaterial, UpdateAlias, DeleteAlias) outright.
The root statement delegates to IAM, so without them an IAM grant of
kms:Encrypt, kms:Decrypt or kms:* reaches or mints the TSK unattested. They
never cover kms:PutKeyPolicy (a key administrator can still rewrite the policy;
CloudTrail records it) nor kms:GenerateDataKeyWithoutPlaintext (provisioning).
The enclave role may also call kms:DescribeKey, kms:GetKeyPolicy and
kms:ListGrants (the enclave's audit of its key).

Images (at least one; repeat any of them to admit several, e.g. during a rollout):
  --pcr0 <hex>             an image by its PCR0 (96 hex characters)
  --measurements <file>    an image by the PCR0 in the JSON printed by nitro-cli
                           build-enclave / describe-eif
  --document <file>        an image by the PCR0 of an attestation document (decoded, not verified)
  --pcr8 <hex>             every image signed with one certificate (nitro-enclave pcr8 --cert)
  --image pcr0=<hex>[,pcr1=<hex>][,pcr2=<hex>] | pcr8=<hex>
                           an image by several PCRs, all of which must match

Options:
  --account <id>           12-digit AWS account id
  --enclave-role <role>    role name or ARN of the parent instance role
  --admin <user|role|arn>  key administrator (repeatable; default user/admin)
  --pcr <i>=<hex>          extra PCR condition of the one --pcr0/--measurements/--document image (repeatable)
  --enclave-action <a>     what the attested enclave may do (repeatable; default kms:Decrypt):
                           kms:Decrypt, kms:GenerateDataKey, kms:GenerateDataKeyPair,
                           kms:GenerateRandom, kms:DeriveSharedSecret — no wildcards
  --allow-debug-pcr0       accept an all-zero PCR0 or PCR8 (debug-mode enclaves; test keys only)
  --no-deny-unattested     leave out the explicit Deny statements (the seed's exact policy)
  --out <file>             write to a file instead of standard output
`;

export const POLICY_OPTIONS = {
  account: { type: 'string' },
  'enclave-role': { type: 'string' },
  admin: { type: 'string', multiple: true },
  pcr0: { type: 'string', multiple: true },
  measurements: { type: 'string', multiple: true },
  document: { type: 'string', multiple: true },
  pcr8: { type: 'string', multiple: true },
  image: { type: 'string', multiple: true },
  pcr: { type: 'string', multiple: true },
  'enclave-action': { type: 'string', multiple: true },
  'allow-debug-pcr0': { type: 'boolean' },
  'no-deny-unattested': { type: 'boolean' },
} as const;

type PolicyFlags = { [K in keyof typeof POLICY_OPTIONS]?: (typeof POLICY_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof POLICY_OPTIONS)[K] extends { type: 'boolean' } ? boolean : string };

const hex = (v: string) => v.replace(/^0x/, '');

function checkedPcr0(pcr0: string, allowDebug: boolean): string {
  if (!/^[0-9a-fA-F]{96}$/.test(pcr0)) throw new UsageError(`PCR0 must be 96 hex characters (SHA-384), got ${pcr0.length}`);
  if (/^0+$/.test(pcr0) && !allowDebug) {
    throw new UsageError('PCR0 is all zeros: that is what a debug-mode enclave reports (nitro-cli run-enclave --debug-mode), and any debug-mode enclave would match it. Use the PCR0 printed by nitro-cli build-enclave; add --allow-debug-pcr0 only for a throwaway test key.');
  }
  return pcr0;
}

function imageArg(value: string): EnclaveImage {
  const image: Record<string, string> = {};
  for (const part of value.split(',')) {
    const m = /^(pcr[0128])=(?:0x)?([0-9a-fA-F]+)$/i.exec(part.trim());
    if (!m) throw new UsageError(`--image expects pcr0=<hex>[,pcr1=<hex>][,pcr2=<hex>] or pcr8=<hex>, got "${value}"`);
    image[m[1]!.toLowerCase()] = m[2]!;
  }
  return image as EnclaveImage;
}

/** Builds the policy from flags: every image flag adds one admitted image. */
export async function policyFromFlags(values: PolicyFlags, io: Io): Promise<PolicyDocument> {
  if (!values.account) throw new UsageError('--account is required');
  if (!values['enclave-role']) throw new UsageError('--enclave-role is required');
  const allowDebug = Boolean(values['allow-debug-pcr0']);
  const pcr0s: string[] = (values.pcr0 ?? []).map(hex);
  for (const file of values.measurements ?? []) {
    let parsed: { Measurements?: Record<string, string> };
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      throw new UsageError(`${file} is not the JSON that nitro-cli prints`);
    }
    const m = parsed.Measurements;
    if (!m?.PCR0) throw new UsageError(`${file} has no Measurements.PCR0`);
    pcr0s.push(m.PCR0);
  }
  for (const file of values.document ?? []) {
    const doc = parseAttestationDocument(await readInput(io, file));
    io.stderr('note: PCR0 taken from a decoded (unverified) attestation document; run `nitro-enclave verify` on it if its origin matters.\n');
    pcr0s.push(doc.pcrsHex[0] ?? '');
  }
  const images: EnclaveImage[] = [...(values.pcr8 ?? []).map((p) => ({ pcr8: hex(p) })), ...(values.image ?? []).map(imageArg)];
  if (pcr0s.length + images.length === 0) throw new UsageError('give at least one image: --pcr0, --measurements, --document, --pcr8 or --image');
  for (const p of pcr0s) checkedPcr0(p, allowDebug);
  const pcrs = pcrArgs(values.pcr);
  if (Object.keys(pcrs).length > 0 && pcr0s.length !== 1) throw new UsageError('--pcr adds conditions to the one --pcr0/--measurements/--document image; with several images use --image pcr0=...,pcr1=...');
  return buildKeyPolicy({
    accountId: values.account,
    enclaveRole: values['enclave-role'],
    ...(values.admin ? { admins: values.admin } : {}),
    ...(pcr0s.length === 1 ? { pcr0: pcr0s[0]!, pcrs } : {}),
    images: [...(pcr0s.length === 1 ? [] : pcr0s.map((pcr0) => ({ pcr0 }))), ...images],
    ...(values['enclave-action'] ? { enclaveActions: values['enclave-action'] } : {}),
    allowDebugPcr0: allowDebug,
    denyUnattested: !values['no-deny-unattested'],
  });
}

export async function policyCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...POLICY_OPTIONS, out: { type: 'string' } } });
  const policy = await policyFromFlags(values, io);
  const text = json(policy);
  if (values.out) {
    const { writeFileAtomic } = await import('../write-atomic.js');
    writeFileAtomic(values.out, text, { mode: 0o644, force: true });
    io.stderr(`wrote ${values.out}\n`);
  } else io.stdout(text);
  return EXIT.OK;
}
