/**
 * The README's threat model names, for every claim, the test that plays the attacker. This keeps
 * the names honest: each one must be a test (or a group of that many tests) in
 * test/kms/hostile-parent.test.ts, or in the file the cell names (`name` in `test/….test.ts`), and
 * every test in test/kms/hostile-parent.test.ts must back a claim in the README.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const TEST_FILE = 'test/kms/hostile-parent.test.ts';

function threatModelSection(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Threat model\n');
  if (start < 0) throw new Error('README has no "## Threat model" section');
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

interface Claim { name: string; count: number; row: string; file: string }

/** The last cell of every body row of a table whose last column is `test`. */
function claims(section: string): Claim[] {
  const out: Claim[] = [];
  let inTestTable = false;
  for (const line of section.split('\n')) {
    if (!line.startsWith('|')) {
      inTestTable = false;
      continue;
    }
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    const last = cells.at(-1)!;
    if (last === 'test') {
      inTestTable = true;
      continue;
    }
    if (!inTestTable || /^-+$/.test(last)) continue;
    const m = /^`([^`]+)`(?: \((\d+) tests\))?(?: in `(test\/[^`]+\.test\.ts)`)?$/.exec(last);
    if (!m) throw new Error(`a threat-model claim without a test name: ${line}`);
    out.push({ name: m[1]!, count: m[2] ? Number(m[2]) : 1, row: cells[0] ?? '', file: m[3] ?? TEST_FILE });
  }
  return out;
}

interface TestCase { title: string; groups: string[] }

/** Every it()/test() in a file, with the titles of the describe() blocks around it. */
function testCases(file: string): TestCase[] {
  const source = ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: TestCase[] = [];
  const visit = (node: ts.Node, groups: string[]): void => {
    if (ts.isCallExpression(node) && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) {
      const callee = node.expression.getText(source).split('.')[0];
      const title = node.arguments[0].text;
      if (callee === 'describe') {
        node.arguments.slice(1).forEach((a) => visit(a, [...groups, title]));
        return;
      }
      if (callee === 'it' || callee === 'test') {
        out.push({ title, groups });
        return;
      }
    }
    ts.forEachChild(node, (child) => visit(child, groups));
  };
  visit(source, []);
  return out;
}

/** The tests a README name stands for: tests whose title starts with it, or the tests of a group whose title ends with it. */
function testsNamed(cases: TestCase[], name: string): TestCase[] {
  return cases.filter((c) => c.title === name || c.title.startsWith(`${name}:`) || c.title.startsWith(`${name} `) || c.groups.some((g) => g === name || g.endsWith(` ${name}`)));
}

describe('README threat model ↔ the hostile-parent tests', () => {
  const section = threatModelSection();
  const table = claims(section);
  const cases = testCases(TEST_FILE);

  it(`names ${TEST_FILE}, and every test file it cites exists`, () => {
    expect(section).toContain(`\`${TEST_FILE}\``);
    const cited = [...section.matchAll(/`(test\/[^`]+\.test\.ts)`/g)].map((m) => m[1]!);
    expect(cited.filter((f) => !existsSync(join(root, f)))).toEqual([]);
  });

  it('every claim in the tables names a test, or a group of exactly that many tests, that exists', () => {
    expect(table.length).toBeGreaterThan(0);
    const wrong = table
      .map((c) => ({ claim: c.name, expected: c.count, found: testsNamed(c.file === TEST_FILE ? cases : testCases(c.file), c.name).length }))
      .filter((r) => r.found !== r.expected);
    expect(wrong).toEqual([]);
  });

  it('every test that plays the hostile parent backs a claim in the README', () => {
    expect(cases.length).toBeGreaterThan(0);
    const named = new Set(table.filter((c) => c.file === TEST_FILE).flatMap((c) => testsNamed(cases, c.name)));
    expect(cases.filter((c) => !named.has(c)).map((c) => [...c.groups, c.title].join(' › '))).toEqual([]);
  });
});
