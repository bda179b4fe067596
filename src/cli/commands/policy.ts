import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseAttestationDocument } from '../../attestation/index.js';
import { buildKeyPolicy, type PolicyDocument } from '../../parent/index.js';
import { EXIT, UsageError, json, pcrArgs, readInput, type Io } from '../io.js';

export const policyHelp = `Usage: nitro-enclave policy --account <id> --enclave-role <role> (--pcr0 <hex> | --measurements <file> | --document <file>) [options]

Writes the KMS key policy of the seed's shape: the account root, the enclave
role allowed kms:Decrypt only with kms:RecipientAttestation:ImageSha384 = PCR0,
and key administrators — plus, by default, explicit Deny statements for every
principal: kms:Decrypt (and the enclave actions) without a matching
attestation, and kms:ReEncrypt* always (ReEncrypt takes no Recipient, and KMS
authorizes it as kms:ReEncryptFrom on the source key). The root statement
delegates to IAM, so without them an IAM grant of kms:Decrypt or kms:* reaches
the TSK unattested. They never cover kms:PutKeyPolicy: a key administrator can
still rewrite the policy (CloudTrail records a PutKeyPolicy event).

Options:
  --account <id>           12-digit AWS account id
  --enclave-role <role>    role name or ARN of the parent instance role
  --admin <user|role|arn>  key administrator (repeatable; default user/admin)
  --pcr0 <hex>             the enclave image hash (96 hex characters)
  --measurements <file>    JSON printed by nitro-cli build-enclave / describe-eif
  --document <file>        take PCR0 from an attestation document (decoded, not verified)
  --pcr <i>=<hex>          extra PCR condition (repeatable, e.g. --pcr 8=<signing cert hash>)
  --enclave-action <a>     what the attested enclave may do (repeatable; default kms:Decrypt):
                           kms:Decrypt, kms:GenerateDataKey, kms:GenerateDataKeyPair,
                           kms:GenerateRandom, kms:DeriveSharedSecret — no wildcards
  --allow-debug-pcr0       accept an all-zero PCR0 (debug-mode enclaves; test keys only)
  --no-deny-unattested     leave out the explicit Deny statements (the seed's exact policy)
  --out <file>             write to a file instead of standard output
`;

export const POLICY_OPTIONS = {
  account: { type: 'string' },
  'enclave-role': { type: 'string' },
  admin: { type: 'string', multiple: true },
  pcr0: { type: 'string' },
  measurements: { type: 'string' },
  document: { type: 'string' },
  pcr: { type: 'string', multiple: true },
  'enclave-action': { type: 'string', multiple: true },
  'allow-debug-pcr0': { type: 'boolean' },
  'no-deny-unattested': { type: 'boolean' },
} as const;

type PolicyFlags = { [K in keyof typeof POLICY_OPTIONS]?: (typeof POLICY_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof POLICY_OPTIONS)[K] extends { type: 'boolean' } ? boolean : string };

/** Builds the policy from flags, with the measurement from exactly one source. */
export async function policyFromFlags(values: PolicyFlags, io: Io): Promise<PolicyDocument> {
  if (!values.account) throw new UsageError('--account is required');
  if (!values['enclave-role']) throw new UsageError('--enclave-role is required');
  const sources = [values.pcr0, values.measurements, values.document].filter((v) => v !== undefined);
  if (sources.length !== 1) throw new UsageError('give exactly one of --pcr0, --measurements, --document');
  let pcr0: string;
  if (values.pcr0) pcr0 = values.pcr0.replace(/^0x/, '');
  else if (values.measurements) {
    let parsed: { Measurements?: Record<string, string> };
    try {
      parsed = JSON.parse(readFileSync(values.measurements, 'utf8'));
    } catch {
      throw new UsageError(`${values.measurements} is not the JSON that nitro-cli prints`);
    }
    const m = parsed.Measurements;
    if (!m?.PCR0) throw new UsageError(`${values.measurements} has no Measurements.PCR0`);
    pcr0 = m.PCR0;
  } else {
    const doc = parseAttestationDocument(await readInput(io, values.document!));
    io.stderr('note: PCR0 taken from a decoded (unverified) attestation document; run `nitro-enclave verify` on it if its origin matters.\n');
    pcr0 = doc.pcrsHex[0] ?? '';
  }
  if (!/^[0-9a-fA-F]{96}$/.test(pcr0)) throw new UsageError(`PCR0 must be 96 hex characters (SHA-384), got ${pcr0.length}`);
  if (/^0+$/.test(pcr0) && !values['allow-debug-pcr0']) {
    throw new UsageError('PCR0 is all zeros: that is what a debug-mode enclave reports (nitro-cli run-enclave --debug-mode), and any debug-mode enclave would match it. Use the PCR0 printed by nitro-cli build-enclave; add --allow-debug-pcr0 only for a throwaway test key.');
  }
  return buildKeyPolicy({
    accountId: values.account,
    enclaveRole: values['enclave-role'],
    ...(values.admin ? { admins: values.admin } : {}),
    pcr0,
    pcrs: pcrArgs(values.pcr),
    ...(values['enclave-action'] ? { enclaveActions: values['enclave-action'] } : {}),
    allowDebugPcr0: Boolean(values['allow-debug-pcr0']),
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
