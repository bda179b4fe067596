import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/** The hand-written Markdown: README, CHANGELOG, docs/*.md (not the generated docs/api), the examples' READMEs. */
function markdownFiles(): string[] {
  const top = readdirSync(root).filter((f) => f.endsWith('.md')).map((f) => join(root, f));
  const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(root, 'docs', f));
  const examples = readdirSync(join(root, 'examples'))
    .map((d) => join(root, 'examples', d, 'README.md'))
    .filter((f) => existsSync(f));
  return [...top, ...docs, ...examples];
}

/** Text outside fenced code blocks, with inline code spans blanked (a link inside code is not a link). */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[\s\S]*?^\1/gm, '').replace(/`[^`\n]*`/g, '``');
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const text = markdown.replace(/^(```|~~~)[\s\S]*?^\1/gm, '');
  for (const m of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = m[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Every relative link target in a Markdown file that does not resolve: a missing file or a missing heading. */
function brokenLinks(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const broken: string[] = [];
  for (const m of prose(source).matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = m[1]!;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:: not ours to check here
    const [path, anchor] = target.split('#', 2) as [string, string | undefined];
    const resolved = path === '' ? file : join(dirname(file), decodeURIComponent(path));
    const where = `${relative(root, file)} → ${target}`;
    if (!existsSync(resolved)) {
      broken.push(`${where}: no such file`);
      continue;
    }
    if (anchor !== undefined && resolved.endsWith('.md') && statSync(resolved).isFile()) {
      if (!anchors(readFileSync(resolved, 'utf8')).has(anchor)) broken.push(`${where}: no such heading`);
    }
  }
  return broken;
}

describe('relative links in the Markdown docs', () => {
  it('computes anchors the way GitHub does', () => {
    const a = anchors('# The `nitro-enclave` CLI\n## The key owner\'s IAM\n```\n# not a heading\n```\n## Threat model\n## Threat model\n');
    expect([...a]).toEqual(['the-nitro-enclave-cli', 'the-key-owners-iam', 'threat-model', 'threat-model-1']);
  });

  it('README.md, CHANGELOG.md, docs/*.md and the examples\' READMEs: every relative link names an existing file and heading', () => {
    const files = markdownFiles();
    expect(files.map((f) => relative(root, f))).toEqual(expect.arrayContaining(['README.md', 'docs/cli.md', 'docs/errors.md']));
    expect(files.flatMap(brokenLinks)).toEqual([]);
  });
});
