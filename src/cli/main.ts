import { EXIT, UsageError, describeError, processIo, type Io } from './io.js';
import { inspectCommand, inspectHelp, verifyCommand, verifyHelp } from './commands/verify.js';
import { policyCommand, policyHelp } from './commands/policy.js';
import { pcr8Command, pcr8Help } from './commands/pcr8.js';
import { checkPolicyCommand, checkPolicyHelp, provisionCommand, provisionHelp, setupCommand, setupHelp } from './commands/kms.js';
import { auditCommand, auditHelp } from './commands/audit.js';
import { rolloutCommand, rolloutHelp } from './commands/rollout.js';
import { credentialsServerCommand, credentialsServerHelp, kmsSimulatorCommand, kmsSimulatorHelp } from './commands/servers.js';

const COMMANDS: Record<string, { run: (argv: string[], io: Io) => Promise<number>; help: string; summary: string }> = {
  verify: { run: verifyCommand, help: verifyHelp, summary: 'verify an attestation document offline' },
  inspect: { run: inspectCommand, help: inspectHelp, summary: 'decode an attestation document (NOT verified)' },
  policy: { run: policyCommand, help: policyHelp, summary: 'write the KMS key policy for an enclave image' },
  pcr8: { run: pcr8Command, help: pcr8Help, summary: 'PCR8 of every EIF signed with a certificate' },
  setup: { run: setupCommand, help: setupHelp, summary: 'create the key and alias, apply the policy (idempotent)' },
  provision: { run: provisionCommand, help: provisionHelp, summary: 'generate the TSK; store only its ciphertext' },
  'check-policy': { run: checkPolicyCommand, help: checkPolicyHelp, summary: 'check that no KMS operation reads or mints the TSK unattested' },
  audit: { run: auditCommand, help: auditHelp, summary: 'report every use of the TSK key from CloudTrail; exit 4 on findings' },
  rollout: { run: rolloutCommand, help: rolloutHelp, summary: 'admit or drop an enclave image (status | add | remove), drain-aware' },
  'credentials-server': { run: credentialsServerCommand, help: credentialsServerHelp, summary: 'parent side: serve role credentials to the enclave' },
  'kms-simulator': { run: kmsSimulatorCommand, help: kmsSimulatorHelp, summary: 'run the local KMS simulator' },
};

const MAIN_HELP = `Usage: nitro-enclave <command> [options]   (nitro-enclave <command> --help for details)

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(20)} ${c.summary}`).join('\n')}

Exit codes: 0 success · 1 error (one line with its code) · 2 usage error · 3 check-policy FAIL · 4 audit findings · 5 rollout refused
`;

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(MAIN_HELP);
    return name ? EXIT.OK : EXIT.USAGE;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`usage: unknown command "${name}"\n${MAIN_HELP}`);
    return EXIT.USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(command.help);
    return EXIT.OK;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    io.stderr(`nitro-enclave ${name}: ${describeError(err)}\n`);
    const usage = err instanceof UsageError || err instanceof TypeError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    return usage ? EXIT.USAGE : EXIT.ERROR;
  }
}

