import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_INFO } from '../../src/errors.js';
// @ts-expect-error: a plain .mjs script without types
import { renderErrorDocs } from '../../scripts/error-docs.mjs';

const root = join(import.meta.dirname, '..', '..');

function filesUnder(dir: string, exts: string[]): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesUnder(path, exts);
    return exts.some((e) => name.endsWith(e)) ? [path] : [];
  });
}

/** Codes other libraries raise that our code only reads (util.parseArgs). */
const foreign = (code: string) => code.startsWith('ERR_PARSE_ARGS');

describe('docs/errors.md and ERROR_INFO', () => {
  it('the committed docs/errors.md is what ERROR_INFO renders (run `npm run docs:errors`)', () => {
    const committed = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
    expect(committed).toBe(renderErrorDocs(ERROR_INFO));
  });

  it('every code the TypeScript and C sources can raise has an entry with cause and remedy', () => {
    const sources = [...filesUnder(join(root, 'src'), ['.ts']), ...filesUnder(join(root, 'native'), ['.c'])];
    const raised = new Set<string>();
    for (const file of sources) {
      for (const m of readFileSync(file, 'utf8').matchAll(/['"](ERR_[A-Z0-9_]*[A-Z0-9])['"]/g)) {
        if (!foreign(m[1]!)) raised.add(m[1]!);
      }
    }
    expect(raised.size).toBeGreaterThan(40);
    const missing = [...raised].filter((code) => !(code in ERROR_INFO));
    expect(missing).toEqual([]);
    for (const [code, info] of Object.entries(ERROR_INFO)) {
      expect(info.when.length, code).toBeGreaterThan(10);
      expect(info.remedy.length, code).toBeGreaterThan(3);
    }
  });

  it('renders every code exactly once, grouped by layer', () => {
    const doc = renderErrorDocs(ERROR_INFO) as string;
    for (const code of Object.keys(ERROR_INFO)) {
      expect(doc.split(`| \`${code}\` |`).length - 1, code).toBe(1);
    }
    expect(doc.indexOf('ERR_ATTESTATION_MALFORMED')).toBeLessThan(doc.indexOf('ERR_KMS_ACCESS_DENIED'));
  });
});
