import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { shmAddon } from '../../agent/api/shm-map.js';
import { skipForPackage } from '../helpers/requires.js';

/**
 * The outpost_shm addon's SIGBUS guard (addons/shm/shm.cc), each case in a child process of its
 * own, so that a regression kills the child and fails here instead of killing the test runner.
 * A real file in /dev/shm, a real mapping, a real ftruncate under it.
 */
const addon = shmAddon({});
const path = addon.ok ? addon.path : '';

/**
 * Runs `body` (CommonJS, with `fs`, `obj` a fresh /dev/shm path, `out` what to report and `say()`
 * to print it) in a child node; `b` is the binding, loaded first unless `lazy` (then `load()`).
 */
function child(
  body: string,
  lazy = false,
): { status: number | null; signal: NodeJS.Signals | null; out: Record<string, unknown> } {
  const obj = `/dev/shm/outpost-guard-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const script = `
const fs = require('node:fs');
const load = () => require(${JSON.stringify(path)});
${lazy ? '' : 'const b = load();'}
const obj = ${JSON.stringify(obj)};
const out = {};
const say = () => process.stdout.write(JSON.stringify(out));
try { ${body} } finally { try { fs.unlinkSync(obj); } catch {} }
`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  let out: Record<string, unknown> = {};
  try {
    out = JSON.parse(r.stdout || '{}') as Record<string, unknown>;
  } catch {
    out = { stdout: r.stdout, stderr: r.stderr };
  }
  return { status: r.status, signal: r.signal, out };
}

describe.skipIf(skipForPackage(addon.ok ? null : addon.reason))('the SIGBUS guard of outpost_shm', () => {
  it('a mapping whose object is truncated to 0 reads zeros and is flagged broken; the process lives', () => {
    const r = child(`
      fs.writeFileSync(obj, Buffer.alloc(3 * 4096 + 100, 7));
      const fd = fs.openSync(obj, 'r+');
      // An offset that is not page-aligned: the addon maps from the page below and hides the rest.
      const m = b.map(fd, 4096 + 10, 2 * 4096, true);
      const u = new Uint8Array(m.buffer);
      out.length = u.length;
      out.first = u[0];
      out.brokenBefore = b.broken(m.slot);
      fs.ftruncateSync(fd, 0);
      let sum = 0;
      for (let i = 0; i < u.length; i++) sum += u[i];
      out.sum = sum;
      out.brokenAfter = b.broken(m.slot);
      out.faults = b.faults();
      u.fill(9); // writes land in private zeros now, not in the client's file
      out.fileBytes = fs.fstatSync(fd).size;
      b.unmap(m.slot, m.buffer);
      out.lengthAfterUnmap = u.length;
      out.mapsAfterUnmap = fs.readFileSync('/proc/self/maps', 'utf8').includes(obj);
      say();
    `);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.out).toEqual({
      length: 8192,
      first: 7,
      brokenBefore: false,
      sum: 0,
      brokenAfter: true,
      faults: 1,
      fileBytes: 0,
      lengthAfterUnmap: 0,
      mapsAfterUnmap: false,
    });
  });

  it('a shrink by one page breaks only the mapping it cuts; another stays whole', () => {
    const r = child(`
      fs.writeFileSync(obj, Buffer.alloc(4 * 4096, 5));
      const fd = fs.openSync(obj, 'r+');
      const head = b.map(fd, 0, 4096, false);
      const tail = b.map(fd, 2 * 4096, 2 * 4096, false);
      fs.ftruncateSync(fd, 3 * 4096);
      const t = new Uint8Array(tail.buffer);
      out.tailFirstPage = t[0];       // still inside the object
      out.tailLastPage = t[4096];     // past the new end: the guard's zeros
      out.tailBroken = b.broken(tail.slot);
      out.headByte = new Uint8Array(head.buffer)[100];
      out.headBroken = b.broken(head.slot);
      b.unmap(tail.slot, tail.buffer);
      b.unmap(head.slot, head.buffer);
      // A freed slot serves a new mapping with a clean flag.
      const again = b.map(fd, 0, 4096, false);
      out.againBroken = b.broken(again.slot);
      b.unmap(again.slot, again.buffer);
      say();
    `);
    expect(r.signal).toBeNull();
    expect(r.out).toEqual({
      tailFirstPage: 5,
      tailLastPage: 0,
      tailBroken: true,
      headByte: 5,
      headBroken: false,
      againBroken: false,
    });
  });

  it('a SIGBUS that is not a fault in our mappings keeps its old meaning', () => {
    // With no handler before ours: the default action ends the process.
    const dfl = child(
      `b.faults(); process.kill(process.pid, 'SIGBUS'); setTimeout(() => { out.alive = true; say(); }, 500);`,
    );
    expect(dfl.signal).toBe('SIGBUS');
    // With one (here Node's own, for a JS listener installed before the addon loaded): it gets the signal.
    // and a fault in our mapping is still ours, not the listener's.
    const chained = child(
      `
      process.on('SIGBUS', () => { out.listener = true; say(); process.exit(0); });
      const b = load();
      fs.writeFileSync(obj, Buffer.alloc(8192, 1));
      const fd = fs.openSync(obj, 'r');
      const m = b.map(fd, 0, 8192, false);
      fs.truncateSync(obj, 0);
      out.read = new Uint8Array(m.buffer)[4096];
      out.faults = b.faults();
      process.kill(process.pid, 'SIGBUS');
      setTimeout(() => { out.timeout = true; say(); }, 2000);
    `,
      true,
    );
    expect(chained.status).toBe(0);
    expect(chained.out).toEqual({ read: 0, faults: 1, listener: true });
  });

  it('refuses arguments that are not counts', () => {
    const r = child(`
      const codes = [];
      for (const args of [[-1, 0, 1, false], [0, 0.5, 1, false], [0, 0, 0, false], [0, 0, 1, 'x']]) {
        try { b.map(...args); codes.push('mapped'); } catch (e) { codes.push(e.code); }
      }
      try { b.map(1e6, 0, 4096, false); } catch (e) { codes.push(e.code); } // not an open fd
      out.codes = codes;
      say();
    `);
    expect(r.out).toEqual({
      codes: [
        'API_SHM_BAD_REQUEST',
        'API_SHM_BAD_REQUEST',
        'API_SHM_BAD_REQUEST',
        'API_SHM_BAD_REQUEST',
        'API_SHM_OBJECT_UNAVAILABLE',
      ],
    });
  });
});
