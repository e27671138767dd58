import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';

// `outpost cloud start` as a real child process, found by tests the way the CLI finds it.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OUTPOST = path.join(ROOT, 'cloud-broker/cli/outpost.js');
let dir: string;

function start(args: string[]): { child: ChildProcess; firstLine: Promise<string>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [OUTPOST, 'cloud', 'start', ...args], {
    cwd: ROOT,
    env: { ...process.env, OUTPOST_DATA_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const firstLine = new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`outpost cloud start exited with ${code} before printing`)));
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stderr!.resume();
  return { child, firstLine, exit };
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-cloudcli-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('outpost cloud start', () => {
  it('prints one JSON line once listening, serves, and stops cleanly on SIGTERM keeping the admin token', async () => {
    const first = start(['--http-port', '0', '--json']);
    const info = JSON.parse(await first.firstLine) as { http: string; mqtt: string | null; adminTokenFile: string };
    expect(info.adminTokenFile).toBe(path.join(dir, 'admin.token'));
    const token = (await fs.readFile(info.adminTokenFile, 'utf8')).trim();
    const client = new CloudClient({ url: info.http, token });
    expect(await client.whoami()).toEqual({ user: 'admin', kind: 'admin' });
    const alice = await client.createUser('alice');
    expect(JSON.parse(await fs.readFile(path.join(dir, 'cloud.json'), 'utf8')).http).toBe(info.http);
    first.child.kill('SIGTERM');
    expect(await first.exit).toBe(0);
    await expect(fs.access(path.join(dir, 'cloud.json'))).rejects.toThrow();

    // A restart on the same data dir keeps the database and the admin token.
    const second = start(['--http-port', '0', '--json']);
    const info2 = JSON.parse(await second.firstLine) as { http: string };
    expect(await new CloudClient({ url: info2.http, token }).whoami()).toEqual({ user: 'admin', kind: 'admin' });
    expect(await new CloudClient({ url: info2.http, token: alice.token }).whoami()).toEqual({
      user: 'alice',
      kind: 'user',
    });
    second.child.kill('SIGINT');
    expect(await second.exit).toBe(0);
  });

  it('answers an unknown flag or a bad port with USAGE (exit 2)', async () => {
    await Promise.all(
      [['--bogus'], ['--http-port', 'eighty'], ['--http-port', '70000']].map(async (args) => {
        const run = start([...args, '--json']);
        const line = await run.firstLine.catch(() => '');
        expect(await run.exit).toBe(2);
        expect(JSON.parse(line).error.code).toBe('USAGE');
      }),
    );
  });
});
