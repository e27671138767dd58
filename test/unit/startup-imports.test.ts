import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * What `outpost-agent run` loads before READY=1 is what its verb module imports statically, the
 * whole graph of it (dynamic import() calls load later; the bundle keeps each in a chunk of its
 * own). docs/runtime.md ("Start-up") keeps some modules out of that graph because serving the
 * installed models does not need them; this walks the sources' static imports and fails when one
 * of them comes back.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const ENTRY = join(REPO, 'agent/cli/commands/run.ts');

/** Static, non-type-only imports and re-exports of one source file. */
function staticImports(file: string): string[] {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const out: string[] = [];
  for (const node of src.statements) {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier))
      out.push(node.moduleSpecifier.text);
    else if (
      ts.isExportDeclaration(node) &&
      !node.isTypeOnly &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    )
      out.push(node.moduleSpecifier.text);
  }
  return out;
}

/** Every module the entry reaches statically: repository files (relative) and packages/built-ins. */
function startupGraph(entry: string): { files: Set<string>; external: Set<string> } {
  const files = new Set<string>();
  const external = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else external.add(spec);
    }
  };
  visit(entry);
  return { files, external };
}

describe('modules loaded before READY', () => {
  const { files, external } = startupGraph(ENTRY);
  const rel = [...files].map((f) => relative(REPO, f));

  it('walks the real graph (the daemon, the store, the runtime and the API are in it)', () => {
    expect(rel).toEqual(
      expect.arrayContaining([
        'agent/daemon/index.ts',
        'agent/store/store.ts',
        'agent/runtime/runtime.ts',
        'protocol/agent-config.ts',
      ]),
    );
    expect(external.has('node:http')).toBe(true);
  });

  it.each([
    ['@tufjs/models', 'the trust root gets its TUF parse after READY (protocol/agent-config-root.ts)'],
    ['node:crypto', 'loaded on first write or hash (agent/fs/lazy-crypto.ts)'],
    ['node:https', 'the downloader loads with the first install (Store.pool())'],
    ['mqtt', 'the sync side starts after READY'],
    ['onnxruntime-node', 'imported by the first ONNX model'],
  ])('leaves out %s: %s', (pkg) => {
    expect([...external].filter((e) => e === pkg || e.startsWith(`${pkg}/`))).toEqual([]);
  });

  it.each([
    ['protocol/trust-root.ts'],
    ['agent/fetch/download.ts'],
    ['agent/daemon/sync-engine.ts'],
    ['agent/runtime/backends/onnx.ts'],
  ])('leaves out %s', (file) => {
    expect(rel).not.toContain(file);
  });
});
