import type { Io } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import type { SimulatedPrincipal } from '../../src/testing/index.js';

/** What one in-process CLI run printed, and its exit code. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `nitro-enclave` CLI in-process as `principal` (credentials through the normal SDK
 * chain: environment variables, restored afterwards). `invoke` replaces `main` where a test calls
 * one command with an injected clock.
 */
export async function runCli(args: string[], principal?: SimulatedPrincipal, options: { stdin?: Uint8Array; invoke?: (args: string[], io: Io) => Promise<number> } = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), readStdin: async () => options.stdin ?? new Uint8Array(), env: process.env };
  const saved = { ...process.env };
  if (principal) {
    process.env.AWS_ACCESS_KEY_ID = principal.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = principal.secretAccessKey;
    if (principal.sessionToken) process.env.AWS_SESSION_TOKEN = principal.sessionToken;
    else delete process.env.AWS_SESSION_TOKEN;
  }
  try {
    return { code: await (options.invoke ?? main)(args, io), stdout, stderr };
  } finally {
    process.env = saved;
  }
}
