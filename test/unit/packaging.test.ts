import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { NOT_ON_DEVICE } from '../helpers/installed.js';

/**
 * The packages' dependency lists (.ci/pack.mjs) can never drift from the code: every package the
 * agent and protocol import is either inside the device bundle (agent/bundle.mjs) or a dependency
 * of outpost-agent, whose dependencies are exactly what the bundle leaves outside (apart from the
 * addon build at install); the cloud package carries everything its three trees import. Type-only
 * imports, which vanish from the JavaScript tsc emits, do not count.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const root = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Manifest {
  name: string;
  version: string;
  bin: Record<string, string>;
  scripts?: Record<string, string>;
  dependencies: Record<string, string>;
  files: string[];
  exports?: Record<string, unknown>;
}
const manifests = JSON.parse(
  execFileSync(process.execPath, [join(REPO, '.ci/pack.mjs'), '--print-manifests'], { encoding: 'utf8' }),
) as Record<'outpost-agent' | 'outpost', Manifest>;

const BUILTIN = new Set(builtinModules);
/**
 * The npm packages one TypeScript source imports at run time, read from its syntax tree with the
 * rule tsc applies under verbatimModuleSyntax: `import type` / `export type` vanish from the
 * JavaScript, every other import stays (`import { type T } from 'x'` becomes `import {} from 'x'`),
 * as do dynamic import() and require() calls (sd_notify's unix-dgram comes through createRequire).
 */
function runtimeImports(source: string): string[] {
  const file = ts.createSourceFile('x.ts', source, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const specs: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) {
      specs.push(node.moduleSpecifier.text);
    } else if (
      ts.isExportDeclaration(node) &&
      !node.isTypeOnly &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      specs.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.arguments.length === 1 && ts.isStringLiteral(node.arguments[0]!)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) {
        specs.push((node.arguments[0] as ts.StringLiteral).text);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  const found = new Set<string>();
  for (const spec of specs) {
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || BUILTIN.has(spec)) continue;
    const parts = spec.split('/');
    found.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
  }
  return [...found].sort();
}

/** Each file is parsed once per run (the two packages share agent/ and protocol/). */
const parsed = new Map<string, string[]>();

/** Folders tsc does not compile (the web page, bundled for the browser by esbuild at build time). */
const NOT_COMPILED =
  (JSON.parse(readFileSync(join(REPO, 'tsconfig.build.json'), 'utf8')) as { exclude?: string[] }).exclude?.map((d) =>
    join(REPO, d),
  ) ?? [];

function importsOf(trees: string[]): string[] {
  const all = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (!NOT_COMPILED.includes(p)) walk(p);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        let pkgs = parsed.get(p);
        if (!pkgs) parsed.set(p, (pkgs = runtimeImports(readFileSync(p, 'utf8'))));
        for (const pkg of pkgs) all.add(pkg);
      }
    }
  };
  for (const t of trees) walk(join(REPO, t));
  return [...all].sort();
}

const ADDON_BUILD = ['cmake-js', 'node-addon-api', 'node-api-headers'];

describe('the import scan', () => {
  it('finds static, dynamic and require imports, and ignores type-only ones, strings and relative paths', () => {
    const src = `
      import a from 'alpha';
      import { type T } from 'inline-type';  // verbatimModuleSyntax keeps it as \`import {} from\`: loaded
      import type { U } from 'typeonly';
      import { b, type V } from '@scope/beta/sub';
      import './local.js';
      import 'side-effect';
      const c = await import('gamma');
      const d = require('delta');
      const msg = "copied from 'not-an-import'";
      import { readFile } from 'node:fs';
      import path from 'path';
      export { f } from 'zeta';
      void a, b, c, d, msg, readFile, path;
    `;
    expect(runtimeImports(src)).toEqual([
      '@scope/beta',
      'alpha',
      'delta',
      'gamma',
      'inline-type',
      'side-effect',
      'zeta',
    ]);
  });
});

describe('outpost-agent (the device package)', () => {
  const m = manifests['outpost-agent'];

  it('depends on exactly what the agent bundle imports from node_modules, plus the addon build', () => {
    // `npm run build` wrote the bundle and what it carries (the packaging step needs it anyway).
    execFileSync(process.execPath, [join(REPO, 'agent/bundle.mjs')], { stdio: 'ignore' });
    const bundle = JSON.parse(readFileSync(join(REPO, 'dist/agent-bundle/meta.json'), 'utf8')) as {
      external: string[];
      bundled: string[];
    };
    const deps = Object.keys(m.dependencies).sort();
    const runtime = deps.filter((d) => !ADDON_BUILD.includes(d));
    const imported = importsOf(['agent', 'protocol']);
    // Each import of the sources is bundled or installed; each installed one is imported (some
    // through createRequire, which the bundler leaves alone: unix-dgram), none is bundled too.
    for (const pkg of imported) expect([...bundle.bundled, ...runtime], pkg).toContain(pkg);
    for (const pkg of runtime) expect(imported, pkg).toContain(pkg);
    for (const pkg of bundle.external) expect(runtime, pkg).toContain(pkg);
    for (const pkg of runtime) expect(bundle.bundled, pkg).not.toContain(pkg);
    expect(deps.filter((d) => ADDON_BUILD.includes(d))).toEqual(ADDON_BUILD);
    // The build deps are there because the install script and CMakeLists.txt use them.
    expect(m.scripts?.install).toBe('node addons/build.mjs');
    expect(readFileSync(join(REPO, 'addons/build.mjs'), 'utf8')).toContain("resolve('cmake-js/package.json')");
    expect(readFileSync(join(REPO, 'CMakeLists.txt'), 'utf8')).toContain("require('node-addon-api')");
  }, 120_000);

  it('carries nothing of the cloud, the transpiler or the test tools', () => {
    for (const name of NOT_ON_DEVICE) {
      expect(m.dependencies, name).not.toHaveProperty(name);
    }
    expect(m.files).toEqual([
      'dist/agent-bundle/',
      'dist/agent-client/',
      'addons/',
      'CMakeLists.txt',
      'systemd/',
      'README.md',
    ]);
    expect(m.bin).toEqual({ 'outpost-agent': 'dist/agent-bundle/bin.js' });
    // The apps' client is the one importable entry, and every path it names is in the build.
    expect(Object.keys(m.exports ?? {})).toEqual(['./client', './package.json']);
    for (const file of Object.values((m.exports as Record<string, Record<string, string>>)['./client']))
      expect(existsSync(join(REPO, file)), file).toBe(true);
  });
});

describe('outpost (the cloud and CLI package)', () => {
  const m = manifests.outpost;

  it('depends on everything agent/, protocol/ and cloud-broker/ import, and on no dev tool', () => {
    const deps = Object.keys(m.dependencies);
    for (const pkg of importsOf(['agent', 'protocol', 'cloud-broker'])) expect(deps, pkg).toContain(pkg);
    for (const dev of Object.keys(root.devDependencies)) expect(deps, dev).not.toContain(dev);
    expect(m.files.some((f) => /^(test|bench|\.ci|docs)\b/.test(f))).toBe(false);
    expect(m.bin).toEqual({ outpost: 'dist/cloud-broker/cli/bin.js' });
  }, 120_000);

  it('and both take their versions from the root package.json (one lockfile)', () => {
    for (const pkg of Object.values(manifests)) {
      expect(pkg.version).toBe(root.version);
      for (const [name, range] of Object.entries(pkg.dependencies)) expect(range, name).toBe(root.dependencies[name]);
    }
  });
});
