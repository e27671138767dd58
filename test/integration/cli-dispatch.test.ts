import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProgress } from '../../cloud-broker/cli/progress.js';
import { EXIT } from '../../protocol/errors/index.js';
import { SHIM, cleanEnv, runInProcess, tempDir } from '../helpers/cli.js';

// The `outpost` dispatcher: help, unknown verbs, device verbs, and `cloud start` as a real
// process that other verbs then find through its data dir.
let root: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir: root, cleanup } = await tempDir('dispatch')));
afterAll(() => cleanup());

describe('dispatcher', () => {
  it('prints the verb list, and group help', async () => {
    let run = await runInProcess(['--help'], { cwd: root, env: cleanEnv() });
    expect(run.code).toBe(0);
    for (const v of [
      'model configure',
      'model publish',
      'model list',
      'model show',
      'model versions',
      'app models add',
      'app models remove',
      'app models show',
      'app models sync',
      'app install',
      'cloud start',
    ]) {
      expect(run.stdout).toContain(`outpost ${v}`);
    }
    run = await runInProcess(['app', 'models', '--help'], { cwd: root, env: cleanEnv() });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('app models sync');
    run = await runInProcess([], { cwd: root, env: cleanEnv() });
    expect(run.code).toBe(EXIT.USAGE);
  });

  it.each([
    [['model'], 'USAGE'],
    [['frobnicate'], 'USAGE'],
    [['app', 'models', 'add'], 'USAGE'],
    [['app', 'models', 'add', 'a/b', 'c/d'], 'USAGE'],
    [['model', 'list', '--verbose'], 'USAGE'],
  ])('%j is a usage error with exit 2', async (argv, code) => {
    const run = await runInProcess([...argv, '--json'], { cwd: root, env: cleanEnv() });
    expect(run.errorCode(), run.stdout).toBe(code);
    expect(run.code).toBe(EXIT.USAGE);
  });

  it('hands device verbs to the agent CLI', async () => {
    const run = await runInProcess(['agent', '--help'], { cwd: root, env: cleanEnv() });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('outpost agent');
  });

  it('cloud start runs as a process that the other verbs find through the data dir', async () => {
    const dataDir = join(root, 'cloud');
    const env = cleanEnv({ HOME: root, OUTPOST_DATA_DIR: dataDir });
    const child = spawn(process.execPath, [SHIM, 'cloud', 'start', '--http-port', '0', '--mqtt-port', '0', '--json'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('close', () => reject(new Error('cloud start exited before printing its line')));
      });
      const info = JSON.parse(line) as { http: string; adminTokenFile: string };
      expect(info.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const run = await runInProcess(['model', 'list', '--json'], { cwd: root, env });
      expect(run.code, run.stdout).toBe(0);
      expect(run.json()).toEqual({ models: [] });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    // Stopped: the data dir no longer advertises it, so the CLI says there is no cloud.
    const after = await runInProcess(['model', 'list', '--json'], {
      cwd: root,
      env: cleanEnv({ HOME: root, OUTPOST_DATA_DIR: dataDir }),
    });
    expect(after.errorCode()).toBe('CLI_NO_CLOUD');
  });
});

describe('progress bar', () => {
  function stream(isTTY: boolean): PassThrough & { isTTY: boolean; text(): string } {
    const s = new PassThrough() as PassThrough & { isTTY: boolean; text(): string };
    const chunks: string[] = [];
    s.on('data', (c: Buffer) => chunks.push(c.toString()));
    s.isTTY = isTTY;
    s.text = () => chunks.join('');
    return s;
  }
  const ctx = (stderr: PassThrough) => ({
    cwd: '/',
    env: {},
    stdout: new PassThrough(),
    stderr,
    signal: new AbortController().signal,
  });

  it('draws on a terminal and stays silent otherwise or with --json', () => {
    const tty = stream(true);
    const p = createProgress(ctx(tty), false, 'uploading', 2_000_000);
    p.update(1_000_000);
    p.finish();
    expect(tty.text()).toContain('\ruploading [');
    expect(tty.text()).toContain(' 50% 1.0/2.0 MB');
    for (const [isTTY, json] of [
      [false, false],
      [true, true],
    ] as const) {
      const s = stream(isTTY);
      const q = createProgress(ctx(s), json, 'x', 10);
      q.update(5);
      q.finish();
      expect(s.text()).toBe('');
    }
  });
});
