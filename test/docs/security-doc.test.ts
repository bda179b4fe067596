import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KMS_OPERATIONS } from '../../src/internal/kms-operations.js';
import { AUTHORITY_DECISIONS, keyPolicyTreatment } from '../../src/parent/key-policy.js';
// @ts-expect-error: a plain .mjs script without types
import { END, renderOperationTable, START } from '../../scripts/security-docs.mjs';

const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'security.md'), 'utf8');

describe('docs/security.md and KMS_OPERATIONS', () => {
  it('the committed operation table is what the classification renders (run `npm run docs:security`)', () => {
    const block = doc.slice(doc.indexOf(START), doc.indexOf(END) + END.length);
    expect(block).toBe(renderOperationTable(KMS_OPERATIONS, keyPolicyTreatment, AUTHORITY_DECISIONS));
  });

  it('lists every operation exactly once', () => {
    for (const o of KMS_OPERATIONS) expect(doc.split(`| \`${o.operation}\``).length - 1, o.operation).toBe(1);
  });
});
