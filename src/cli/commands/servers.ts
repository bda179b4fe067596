import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { SocketAddress } from '../../internal/native.js';
import { EXIT, UsageError, json, readTrustAnchorFile, type Io } from '../io.js';

export const credentialsServerHelp = `Usage: nitro-enclave credentials-server --enclave-cid <cid> [--port 8002] [--file <name>=<path>]...
       nitro-enclave credentials-server --listen unix:<path> [--file <name>=<path>]...

Runs on the parent instance: serves the instance role's temporary credentials
(the AWS SDK chain, i.e. IMDS) to the enclave over vsock, one JSON answer per
connection, to the given enclave CID only (checked on each connection).
--listen unix:<path> is for local testing: a unix socket has no CID, so ANY
local process that can open the socket may connect and receive the
credentials; no CID check is made there. The enclave reads them with
fromParentCredentials(). --file offers a file by name (e.g. --file
tsk=tsk.ciphertext), read in the enclave with fetchParentFile('tsk'): the TSK's
CiphertextBlob cannot be baked into the image, whose PCR0 the key policy needs
first. Never logs secrets. Stops on SIGINT/SIGTERM.
`;

export const kmsSimulatorHelp = `Usage: nitro-enclave kms-simulator [--port <n>] [--region <r>] [--state <file>] [--trust-anchor <file>]... [--ca-out <file>] [--json]

Starts the KMS simulator (AWS JSON 1.1 over HTTPS on 127.0.0.1) for local
development and tests; prints its endpoint, region, test credentials and the
CA file to trust. Keys live in memory, or in --state (JSON, written atomically).
--trust-anchor: roots accepted for Recipient attestation documents (PEM/DER).
The same endpoint serves CloudTrail's LookupEvents over every request it saw
(aws cloudtrail lookup-events --endpoint-url …; nitro-enclave audit).
Stops on SIGINT/SIGTERM.
`;

function waitForSignal(): Promise<void> {
  return new Promise((r) => {
    process.once('SIGINT', () => r());
    process.once('SIGTERM', () => r());
  });
}

export async function credentialsServerCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { 'enclave-cid': { type: 'string' }, port: { type: 'string' }, listen: { type: 'string' }, file: { type: 'string', multiple: true } } });
  const files: Record<string, Uint8Array> = {};
  for (const spec of values.file ?? []) {
    const m = /^([\w.-]{1,64})=(.+)$/.exec(spec);
    if (!m) throw new UsageError(`--file expects <name>=<path>, got "${spec}"`);
    files[m[1]!] = new Uint8Array(readFileSync(m[2]!));
  }
  const cid = Number(values['enclave-cid']);
  let address: SocketAddress = { family: 'vsock', cid: 0xffffffff, port: Number(values.port ?? 8002) };
  if (values.listen) {
    if (!values.listen.startsWith('unix:')) throw new UsageError('--listen takes unix:<path> (vsock is the default)');
    address = { family: 'unix', path: values.listen.slice(5) };
  } else if (!Number.isInteger(cid) || cid < 3) throw new UsageError('--enclave-cid <cid> (the CID passed to nitro-cli run-enclave) is required');
  const { serveParentCredentials } = await import('../../parent/index.js');
  const log = (l: string) => io.stderr(`${new Date().toISOString()} ${l}\n`);
  if (address.family === 'unix') {
    io.stderr(`credentials-server: WARNING: listening on unix:${address.path}. Any local process that can open this socket may connect and receive the instance role's credentials: a unix socket has no CID, so no CID check is made${values['enclave-cid'] !== undefined ? ` (--enclave-cid ${values['enclave-cid']} is not used)` : ''}. For local testing only.\n`);
  }
  const server = await serveParentCredentials({ address, files, log, ...(address.family === 'unix' ? { allowPeer: () => true } : { enclaveCid: cid }) });
  await waitForSignal();
  server.close();
  return EXIT.OK;
}

export async function kmsSimulatorCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { port: { type: 'string' }, region: { type: 'string' }, state: { type: 'string' }, 'trust-anchor': { type: 'string', multiple: true }, 'ca-out': { type: 'string' }, json: { type: 'boolean' } } });
  const { startKmsSimulator } = await import('../../testing/kms/simulator.js');
  const anchors = values['trust-anchor']?.map(readTrustAnchorFile);
  const sim = await startKmsSimulator({
    port: Number(values.port ?? 0),
    ...(values.region ? { region: values.region } : {}),
    ...(values.state ? { stateFile: resolve(values.state) } : {}),
    ...(anchors ? { trustAnchors: anchors } : {}),
  });
  const caFile = resolve(values['ca-out'] ?? 'kms-simulator-ca.pem');
  writeFileSync(caFile, sim.caPem);
  const info = {
    endpoint: `https://localhost:${sim.port}`,
    region: sim.region,
    hostname: sim.hostname,
    caFile,
    principals: sim.principals.map((p) => ({ arn: p.arn, accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey, ...(p.sessionToken ? { sessionToken: p.sessionToken } : {}) })),
    note: 'test credentials for the simulator only',
  };
  if (values.json) io.stdout(json(info));
  else {
    io.stdout(`KMS simulator listening\n  endpoint  ${info.endpoint}  (certificate names ${sim.hostname} and localhost)\n  region    ${info.region}\n  CA file   ${caFile}\n`);
    for (const p of info.principals) io.stdout(`  ${p.arn}\n    AWS_ACCESS_KEY_ID=${p.accessKeyId} AWS_SECRET_ACCESS_KEY=${p.secretAccessKey}${p.sessionToken ? ` AWS_SESSION_TOKEN=${p.sessionToken}` : ''}\n`);
    io.stdout(`  try: nitro-enclave setup --endpoint ${info.endpoint} --ca-file ${caFile} --region ${info.region} …\n`);
  }
  await waitForSignal();
  await sim.close();
  return EXIT.OK;
}
