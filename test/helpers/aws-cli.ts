import { execFile, execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KmsSimulator, TestPrincipal } from '../../src/testing/index.js';

const run = promisify(execFile); // never execFileSync for `aws`: the simulator runs in the test's process

/** Debian's awscli when installed (what .ci/run installs), else whichever `aws` is on PATH. */
export const awsCli = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';

export const awsAvailable = (() => {
  try {
    execFileSync(awsCli, ['--version'], { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
})();

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `aws <args…>` as `who` against the simulator: credentials in the
 * environment only, no profile, the simulator's CA (written to `dir`), no
 * network but the loopback endpoint.
 */
export async function awsAgainst(sim: KmsSimulator, dir: string, who: TestPrincipal, args: string[]): Promise<CliResult> {
  writeFileSync(join(dir, 'ca.pem'), sim.caPem);
  writeFileSync(join(dir, 'config'), '');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^AWS_|_PROXY$|^NO_PROXY$/i.test(k)) env[k] = v;
  Object.assign(env, {
    AWS_ACCESS_KEY_ID: who.accessKeyId,
    AWS_SECRET_ACCESS_KEY: who.secretAccessKey,
    ...(who.sessionToken ? { AWS_SESSION_TOKEN: who.sessionToken } : {}),
    AWS_DEFAULT_REGION: sim.region,
    AWS_CA_BUNDLE: join(dir, 'ca.pem'),
    AWS_CONFIG_FILE: join(dir, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'config'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
    AWS_MAX_ATTEMPTS: '1',
    NO_PROXY: '*',
  });
  try {
    const { stdout, stderr } = await run(awsCli, ['--endpoint-url', `https://localhost:${sim.port}`, '--output', 'json', ...args], { env, cwd: dir, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The AWS error the CLI printed (v1 and v2 forms). */
export function cliError(r: CliResult): { code: string; operation: string; message: string } {
  const m = /An error occurred \((\w+)\) when calling the (\w+) operation(?: \(reached max retries: \d+\))?: (.*)/.exec(r.stderr);
  if (r.code === 0 || !m) throw new Error(`expected an AWS error, got exit ${r.code}: ${r.stderr}`);
  return { code: m[1]!, operation: m[2]!, message: m[3]!.trim() };
}
