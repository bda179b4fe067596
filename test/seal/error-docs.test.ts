import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

describe('ERR_SEAL_* codes are documented', () => {
  it('every code of the SealErrorCode union has a row in the README error table', () => {
    const errors = readFileSync(join(root, 'src', 'errors.ts'), 'utf8');
    const union = /export type SealErrorCode =([^;]+);/.exec(errors)![1]!;
    const codes = [...union.matchAll(/'(ERR_SEAL_[A-Z_]+)'/g)].map((m) => m[1]!);
    expect(codes.length).toBeGreaterThanOrEqual(6);
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Error codes'));
    for (const code of codes) expect(table, code).toContain(`| \`${code}\` |`);
  });
});
