import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// ../shared from the main checkout; a worktree under /work/wt/<name> has it one level further up.
const seedPath = [resolve(here, '../../../shared/seed/kms-configuration.md'), resolve(here, '../../../../shared/seed/kms-configuration.md')].find((p) => existsSync(p)) ?? resolve(here, '../../../shared/seed/kms-configuration.md');

export const seedAvailable = existsSync(seedPath);

/** The JSON code blocks of the seed (../shared/seed/kms-configuration.md), parsed. */
export function seedJsonBlocks(): unknown[] {
  const text = readFileSync(seedPath, 'utf8');
  return [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]!));
}

/** The seed's key policy with its placeholders filled in. */
export function seedKeyPolicy(accountId: string, pcr0: string): string {
  const policy = seedJsonBlocks().find((b) => (b as { Id?: string }).Id === 'confidential-workflow-key-policy');
  if (!policy) throw new Error('the seed has no key policy block');
  return JSON.stringify(policy).replaceAll('ACCOUNT_ID', accountId).replaceAll('PCR0_VALUE_HERE', pcr0);
}

/** The seed's step-4 IAM policy for the instance role, for a key ARN. */
export function seedInstanceRolePolicy(keyArn: string): unknown {
  const block = seedJsonBlocks().find((b) => JSON.stringify(b).includes('arn:aws:kms:REGION:ACCOUNT_ID:key/KEY_ID'));
  if (!block) throw new Error('the seed has no instance role policy block');
  return JSON.parse(JSON.stringify(block).replace('arn:aws:kms:REGION:ACCOUNT_ID:key/KEY_ID', keyArn));
}
