/**
 * The README is a guide, not a reference manual (issue 10 §6): small, with the commands, the
 * flow, the seed's steps, the threat model, and a way to every page under docs/.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { seedAvailable } from '../helpers/seed.js';

const root = join(import.meta.dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const MAX_BYTES = 15 * 1024;

function section(heading: string): string {
  const start = readme.indexOf(`\n## ${heading}`);
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('README as a guide', () => {
  it(`stays at most ${MAX_BYTES} bytes: detail belongs in docs/`, () => {
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(MAX_BYTES);
  });

  it('gives the commands to try it and to test it', () => {
    const quickStart = section('Quick start');
    for (const command of ['npm install && npm run demo', 'npm test', 'npm run demo:workflow']) {
      expect(quickStart).toContain(command);
    }
    for (const script of ['demo', 'test', 'demo:workflow', 'docs']) {
      expect(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts).toHaveProperty([script]);
    }
  });

  it('links every page under docs/, and says how to generate the API reference', () => {
    const pages = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'));
    expect(pages.length).toBeGreaterThan(5);
    expect(pages.filter((page) => !readme.includes(`](docs/${page}`))).toEqual([]);
    expect(section('Reference')).toMatch(/`npm run docs`[^\n]*`docs\/api\/`/);
  });

  it.skipIf(!seedAvailable)("maps every step of the seed's kms-configuration.md to a command", () => {
    const seed = readFileSync(resolve(root, '..', 'shared', 'seed', 'kms-configuration.md'), 'utf8');
    const steps = [...seed.matchAll(/^## Step (\d+):/gm)].map((m) => m[1]!);
    expect(steps.length).toBeGreaterThan(3);
    const rows = section("The seed's steps").split('\n').filter((l) => l.startsWith('| ')).map((l) => l.slice(2));
    expect(steps.filter((n) => !rows.some((row) => row.startsWith(`${n} `)))).toEqual([]);
    for (const heading of ['Verification', 'Troubleshooting']) {
      expect(seed).toContain(`## ${heading}`);
      expect(rows.some((row) => row.startsWith(heading)), heading).toBe(true);
    }
  });
});
