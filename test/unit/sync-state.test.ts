import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SyncState } from '../../agent/sync/sync-state.js';

/** Rollback pins live in sync.json: they outlive the process and fall with the revision they were set under. */
describe('SyncState rollback pins', () => {
  const dirs: string[] = [];
  const file = () => {
    const d = mkdtempSync(join(tmpdir(), 'sync-state-'));
    dirs.push(d);
    return join(d, '.outpost', 'sync.json');
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const pin = { model: 'acme/m', version: 2, to: 1, revision: 7 };

  it('a pin set under a revision is read back by a new instance (a restart)', () => {
    const path = file();
    const s = new SyncState(path);
    s.save(7, '{"doc":7}');
    s.pin(pin);
    const after = new SyncState(path);
    expect(after.pins(7)).toEqual([pin]);
    expect(after.pins(8)).toEqual([]);
    expect(after.lastRevision()).toBe(7);
    expect(after.lastDocument()).toBe('{"doc":7}');
  });

  it('a new revision drops the pins of the old one, on disk too', () => {
    const path = file();
    const s = new SyncState(path);
    s.save(7, '{}');
    s.pin(pin);
    s.save(8, '{}');
    expect(s.pins(7)).toEqual([]);
    expect(new SyncState(path).pins(7)).toEqual([]);
  });

  it('unpin drops every pin of the model; pinning the same version again replaces it', () => {
    const path = file();
    const s = new SyncState(path);
    s.pin(pin);
    s.pin({ ...pin, to: 0 });
    s.pin({ ...pin, model: 'acme/other' });
    expect(s.pins(7)).toHaveLength(2);
    s.unpin('acme/m');
    expect(new SyncState(path).pins(7)).toEqual([{ ...pin, model: 'acme/other' }]);
  });
});
