import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

// Real child processes receiving real signals: the handlers' guarantees are about process exit,
// which cannot be observed in-process.
const signalsModule = fileURLToPath(new URL('../../agent/system/signals.ts', import.meta.url));
const logModule = fileURLToPath(new URL('../../protocol/log.ts', import.meta.url));

const SCRIPT = `
  import { onShutdown, onReload } from ${JSON.stringify(signalsModule)};
  import { createLogger } from ${JSON.stringify(logModule)};
  const log = createLogger({ level: 'info', destination: process.stderr });
  const say = (s) => process.stdout.write(s + '\\n');
  const mode = process.argv[1];
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  setInterval(() => {}, 1000);
  if (mode === 'order') {
    onShutdown(async () => { say('store stop'); }, { timeoutMs: 5000, log });
    onShutdown(async ({ signal }) => { say('api stop ' + signal); await sleep(100); say('api done'); }, { timeoutMs: 5000, log });
  } else if (mode === 'hang') {
    onShutdown(async ({ deadline }) => { say('hang start'); await new Promise(() => {}); }, { timeoutMs: 300, log });
  } else if (mode === 'fail') {
    onShutdown(() => { say('second ran'); }, { timeoutMs: 5000, log });
    onShutdown(() => { throw new Error('boom'); }, { timeoutMs: 5000, log });
  } else if (mode === 'reload') {
    let n = 0;
    onReload(async () => { const i = ++n; say('reload ' + i + ' start'); await sleep(300); say('reload ' + i + ' done'); }, { log });
    onShutdown(() => { say('reloads ' + n); }, { timeoutMs: 5000, log });
  }
  say('ready');
`;

interface Run {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  waitLine(l: string): Promise<void>;
  exit: Promise<number | null>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function start(mode: string): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: string[] = [];
  let err = '';
  let buf = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const waitLine = async (l: string): Promise<void> => {
    while (!lines.includes(l)) {
      if (child.exitCode !== null) throw new Error(`child exited before "${l}": ${JSON.stringify(lines)} ${err}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
  };
  return { child, lines, stderr: () => err, waitLine, exit };
}

describe('onShutdown', () => {
  it('runs handlers once, last registered first, then exits 0', async () => {
    const r = start('order');
    await r.waitLine('ready');
    r.child.kill('SIGTERM');
    await r.waitLine('api stop SIGTERM');
    r.child.kill('SIGTERM'); // a second signal must not start a second shutdown
    expect(await r.exit).toBe(0);
    expect(r.lines).toEqual(['ready', 'api stop SIGTERM', 'api done', 'store stop']);
    expect(r.stderr()).toContain('already shutting down');
  });

  it('exits 1 with SHUTDOWN_TIMEOUT when a handler misses the deadline', async () => {
    const r = start('hang');
    await r.waitLine('ready');
    r.child.kill('SIGINT');
    expect(await r.exit).toBe(1);
    expect(r.lines).toContain('hang start');
    expect(r.stderr()).toContain('"code":"SHUTDOWN_TIMEOUT"');
  });

  it('runs the remaining handlers after one fails, and exits 1', async () => {
    const r = start('fail');
    await r.waitLine('ready');
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(1);
    expect(r.lines).toContain('second ran');
    expect(r.stderr()).toContain('boom');
  });
});

describe('onReload', () => {
  it('never runs two reloads at once and folds SIGHUPs during a reload into one more', async () => {
    const r = start('reload');
    await r.waitLine('ready');
    r.child.kill('SIGHUP');
    await r.waitLine('reload 1 start');
    r.child.kill('SIGHUP');
    r.child.kill('SIGHUP');
    await r.waitLine('reload 2 done');
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    expect(r.lines).toEqual([
      'ready',
      'reload 1 start',
      'reload 1 done',
      'reload 2 start',
      'reload 2 done',
      'reloads 2',
    ]);
  });
});
