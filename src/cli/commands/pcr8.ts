import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pcr8FromCertificate } from '../../parent/index.js';
import { EXIT, UsageError, json, type Io } from '../io.js';

export const pcr8Help = `Usage: nitro-enclave pcr8 --cert <cert.pem> [--json]

Prints PCR8 of every EIF signed with this certificate, computed as nitro-cli
does (nitro-cli pcr --signing-certificate): SHA-384 of 48 zero bytes followed by
SHA-384 of the certificate's DER. Admit every image signed with it:
  nitro-enclave policy ... --pcr8 <this value>

Options:
  --cert <file>   the signing certificate (PEM, or DER), as given to
                  nitro-cli build-enclave --signing-certificate
  --json          print {"PCR8": "<hex>"} as nitro-cli does
`;

export async function pcr8Command(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { cert: { type: 'string' }, json: { type: 'boolean' } } });
  if (!values.cert) throw new UsageError('--cert <file> is required');
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(values.cert));
  } catch {
    throw new UsageError(`cannot read ${values.cert}`);
  }
  const pcr8 = pcr8FromCertificate(bytes);
  io.stdout(values.json ? json({ PCR8: pcr8 }) : `${pcr8}\n`);
  return EXIT.OK;
}
