import { execFile, execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KmsSimulator, TestPrincipal } from '../../src/testing/index.js';

const run = promisify(execFile); // never execFileSync: the simulator runs in this process
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
if (!awsAvailable && process.env.CI) throw new Error('CI must have the AWS CLI (.ci/run installs Debian awscli)');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `aws <args…>` (any service the simulator serves: `kms …`, `cloudtrail …`)
 * against the simulator as `who`: credentials in the environment only, no
 * profile, no network but the loopback endpoint, the simulator's CA trusted
 * (written into `dir`, which is also the working directory for `file://` and
 * `fileb://` arguments).
 */
export async function awsAgainst(sim: KmsSimulator, dir: string, who: TestPrincipal, args: string[], region = sim.region): Promise<CliResult> {
  writeFileSync(join(dir, 'ca.pem'), sim.caPem);
  writeFileSync(join(dir, 'config'), '');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^AWS_|_PROXY$|^NO_PROXY$/i.test(k)) env[k] = v;
  Object.assign(env, {
    AWS_ACCESS_KEY_ID: who.accessKeyId,
    AWS_SECRET_ACCESS_KEY: who.secretAccessKey,
    ...(who.sessionToken ? { AWS_SESSION_TOKEN: who.sessionToken } : {}),
    AWS_DEFAULT_REGION: region,
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

/** `aws kms …` against the simulator as `who` (see {@link awsAgainst}). */
export function awsKms(sim: KmsSimulator, dir: string): (who: TestPrincipal, args: string[], region?: string) => Promise<CliResult> {
  return (who, args, region = sim.region) => awsAgainst(sim, dir, who, ['kms', ...args], region);
}

/** The error the CLI printed, in the form both AWS CLI v1 and v2 use (v2 may add "(reached max retries: N)"). */
export function cliError(r: CliResult): { code: string; operation: string; message: string } {
  const m = /An error occurred \((\w+)\) when calling the (\w+) operation(?: \(reached max retries: \d+\))?: (.*)/.exec(r.stderr);
  if (r.code === 0 || !m) throw new Error(`expected an AWS error, got exit ${r.code}: ${r.stderr}`);
  return { code: m[1]!, operation: m[2]!, message: m[3]!.trim() };
}
