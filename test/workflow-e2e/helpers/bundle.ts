import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const cacheDir = join(root, 'node_modules', '.cache', 'nitro-enclave-sdk-workflow-bundles');

function filesUnder(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => filesUnder(join(path, name)));
}

/**
 * Bundles workflow code once per content: webpack takes ~10 s here, so test
 * files share the bundle through a cache keyed by every file under
 * `sourceDirs` and the @temporalio/worker version.
 */
export async function cachedWorkflowBundle(workflowsPath: string, sourceDirs: string[]): Promise<{ code: string }> {
  const require = createRequire(import.meta.url);
  const hash = createHash('sha256').update((require('@temporalio/worker/package.json') as { version: string }).version);
  hash.update(workflowsPath);
  for (const file of sourceDirs.flatMap(filesUnder)) hash.update(file).update(readFileSync(file));
  const cached = join(cacheDir, `${hash.digest('hex').slice(0, 32)}.js`);
  try {
    return { code: readFileSync(cached, 'utf8') };
  } catch {
    const { code } = await bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cached}.${process.pid}.tmp`;
    writeFileSync(tmp, code);
    renameSync(tmp, cached);
    return { code };
  }
}
