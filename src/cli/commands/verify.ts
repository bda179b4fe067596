import { parseArgs } from 'node:util';
import { parseAttestationDocument, verifyAttestationDocument, type TrustAnchor } from '../../attestation/index.js';
import { EXIT, UsageError, hexArg, json, pcrArgs, readInput, readTrustAnchorFile, type Io } from '../io.js';

export const verifyHelp = `Usage: nitro-enclave verify <file|-> [options]

Verifies an attestation document offline: COSE_Sign1 (ES384), the certificate
chain to the AWS Nitro root (pinned by SHA-256), validity at --at, and any
expected values. The file may hold raw CBOR, hex or base64.

Options:
  --at <ISO time>          check validity at this time (default: now)
  --pcr <i>=<hex>          expected PCR value (repeatable)
  --nonce <hex>            expected nonce
  --public-key <hex>       expected public_key
  --user-data <hex>        expected user_data
  --max-age <ms>           reject documents older than this
  --allow-debug            accept debug-mode enclaves (all-zero PCR0..2); refused by default
  --trust-anchor <file>    trust this root (PEM/DER) instead of AWS's (repeatable)
  --json                   print the verified facts as JSON
`;

export const inspectHelp = `Usage: nitro-enclave inspect <file|-> [--json]

Decodes an attestation document WITHOUT verifying it: nothing printed is
trustworthy. Use \`verify\` for facts.
`;

function facts(f: { moduleId: string; timestamp: Date; digest: string; pcrsHex: Record<number, string>; debugMode: boolean; publicKey: Uint8Array | null; userData: Uint8Array | null; nonce: Uint8Array | null }) {
  const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString('hex') : null);
  return { moduleId: f.moduleId, timestamp: f.timestamp.toISOString(), digest: f.digest, debugMode: f.debugMode, pcrs: f.pcrsHex, publicKey: hex(f.publicKey), userData: hex(f.userData), nonce: hex(f.nonce) };
}

function print(io: Io, title: string, f: ReturnType<typeof facts>, extra: string[] = []) {
  io.stdout(`${title}\n`);
  io.stdout(`  module id   ${f.moduleId}\n  timestamp   ${f.timestamp}\n  debug mode  ${f.debugMode ? 'YES (PCR0..2 are zero)' : 'no'}\n`);
  for (const line of extra) io.stdout(`  ${line}\n`);
  for (const [i, v] of Object.entries(f.pcrs)) if (!/^0+$/.test(v) || Number(i) < 3) io.stdout(`  PCR${i.padEnd(9)} ${v}\n`);
  for (const k of ['publicKey', 'userData', 'nonce'] as const) io.stdout(`  ${k.padEnd(11)} ${f[k] ? `${f[k]!.length / 2} bytes` : 'absent'}\n`);
}

export async function verifyCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      at: { type: 'string' },
      pcr: { type: 'string', multiple: true },
      nonce: { type: 'string' },
      'public-key': { type: 'string' },
      'user-data': { type: 'string' },
      'max-age': { type: 'string' },
      'allow-debug': { type: 'boolean' },
      'trust-anchor': { type: 'string', multiple: true },
      json: { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) throw new UsageError('verify takes one file (or - for standard input)');
  const at = values.at === undefined ? undefined : new Date(values.at);
  if (at && Number.isNaN(at.getTime())) throw new UsageError('--at must be an ISO 8601 time');
  const maxAge = values['max-age'] === undefined ? undefined : Number(values['max-age']);
  if (maxAge !== undefined && !(maxAge >= 0)) throw new UsageError('--max-age must be milliseconds');
  const anchors: TrustAnchor[] | undefined = values['trust-anchor']?.map(readTrustAnchorFile);
  const doc = await readInput(io, positionals[0]!);
  const nonce = hexArg('--nonce', values.nonce);
  const publicKey = hexArg('--public-key', values['public-key']);
  const userData = hexArg('--user-data', values['user-data']);
  const result = await verifyAttestationDocument(doc, {
    ...(at ? { currentDate: at } : {}),
    ...(maxAge !== undefined ? { maxAgeMs: maxAge } : {}),
    expectedPcrs: pcrArgs(values.pcr),
    ...(nonce ? { nonce } : {}),
    ...(publicKey ? { publicKey } : {}),
    ...(userData ? { userData } : {}),
    ...(anchors ? { trustAnchors: anchors } : {}),
    allowDebug: values['allow-debug'] === true,
  });
  const f = facts(result);
  if (values.json) io.stdout(json({ verified: true, ...f, certificateNotAfter: result.certificateNotAfter }));
  else print(io, '✔ VERIFIED attestation document', f, [`leaf valid  until ${result.certificateNotAfter.toISOString()}`]);
  return EXIT.OK;
}

export async function inspectCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (positionals.length !== 1) throw new UsageError('inspect takes one file (or - for standard input)');
  const doc = parseAttestationDocument(await readInput(io, positionals[0]!));
  const f = facts(doc);
  io.stderr('WARNING: NOT VERIFIED — decoded only; signature, chain and freshness were not checked. Use `nitro-enclave verify`.\n');
  if (values.json) io.stdout(json({ verified: false, ...f, indefiniteLengthPayload: doc.indefiniteLengthPayload }));
  else print(io, '⚠ UNVERIFIED attestation document (decoded only)', f);
  return EXIT.OK;
}
