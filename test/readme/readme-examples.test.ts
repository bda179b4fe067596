import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The README shows the start of it and links the whole example in docs/testing.md, which runs here as printed.
const testingDoc = readFileSync(join(root, 'docs', 'testing.md'), 'utf8');
const generated = join(root, 'test', 'readme', '.readme-example.generated.ts');
afterAll(() => rmSync(generated, { force: true }));

/** The first ```ts block after `heading`. */
function exampleAfter(heading: string): string {
  const at = testingDoc.indexOf(heading);
  if (at < 0) throw new Error(`docs/testing.md has no "${heading}"`);
  const m = /```ts\n([\s\S]*?)```/.exec(testingDoc.slice(at));
  if (!m) throw new Error(`no ts example after "${heading}"`);
  return m[1]!;
}

describe('the testing example runs as written', () => {
  it('docs/testing.md "Testing your enclave app": the complete example gets a TSK from the simulator', async () => {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    // The example as printed, plus two lines to hand its results to the test and clean up.
    const code = `${exampleAfter('# Testing your enclave app')}\nexport const result = { tsk, kms };\n`;
    writeFileSync(generated, code);
    const { result } = (await import(generated)) as { result: { tsk: { metadata: { pcr0: string }; keyObject: { export(): Buffer } }; kms: { close(): Promise<void>; audit: Array<{ eventName: string; errorCode?: string }> } } };
    expect(result.tsk.keyObject.export()).toHaveLength(32);
    expect(result.tsk.metadata.pcr0).toMatch(/^[0-9a-f]{96}$/);
    expect(result.kms.audit.some((e) => e.eventName === 'Decrypt' && !e.errorCode)).toBe(true);
    await result.kms.close();
  });
});
