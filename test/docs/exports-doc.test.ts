import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/** The entry point of every subpath in package.json's exports map, as TypeScript source. */
function entryPoints(): string[] {
  const exportsMap = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).exports as Record<string, unknown>;
  const files = Object.values(exportsMap)
    .map((target) => (typeof target === 'object' && target !== null ? (target as Record<string, string>).default : undefined))
    .filter((t): t is string => typeof t === 'string' && t.startsWith('./dist/'))
    .map((t) => join(root, t.replace('./dist/', 'src/').replace(/\.js$/, '.ts')));
  return files.filter((f) => existsSync(f));
}

/**
 * What TypeDoc renders from: every public export carries a doc comment, and every callable
 * export (function or class) an `@example`. Constants and types are documented in words: an
 * example of a type is the example of the function that takes it.
 */
function undocumented(): string[] {
  const entries = entryPoints();
  const program = ts.createProgram(entries, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const problems: string[] = [];
  for (const entry of entries) {
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry)!);
    for (const exported of checker.getExportsOfModule(moduleSymbol!)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const where = `${entry.slice(root.length + 1)}: ${exported.name}`;
      if (ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim() === '') problems.push(`${where} has no doc comment`);
      const callable = (symbol.flags & (ts.SymbolFlags.Function | ts.SymbolFlags.Class)) !== 0;
      if (callable && !symbol.getJsDocTags(checker).some((tag) => tag.name === 'example')) problems.push(`${where} has no @example`);
    }
  }
  return problems;
}

describe('API reference', () => {
  it('covers every subpath of the exports map', () => {
    const entries = entryPoints();
    expect(entries.length).toBeGreaterThanOrEqual(6);
    const typedoc = JSON.parse(readFileSync(join(root, 'typedoc.json'), 'utf8')) as { entryPoints: string[] };
    const globs = typedoc.entryPoints;
    for (const entry of entries) {
      const rel = entry.slice(root.length + 1);
      const covered = globs.some((g) => new RegExp(`^${g.replace(/\./g, '\\.').replace(/\*\*/g, '.+').replace(/\*/g, '[^/]+')}$`).test(rel));
      expect(covered, `${rel} is not a TypeDoc entry point`).toBe(true);
    }
  });

  it('every public export has a doc comment, and every function and class an @example', () => {
    expect(undocumented()).toEqual([]);
  }, 60_000);
});
