import { describe, expect, it } from 'vitest';
import { openTestDb } from '../helpers/test-db.js';
import { FleetStore } from '../../cloud-broker/fleet/store.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const rawReported = (s: FleetStore, id: string): string | null =>
  (s.db.prepare('SELECT reported FROM devices WHERE id = ?').get(id) as { reported: string | null }).reported;

async function fresh(): Promise<FleetStore> {
  const s = new FleetStore(await openTestDb());
  s.upsertDevice('dev-a', []);
  s.upsertDevice('dev-b', []);
  return s;
}

describe('fleet store: reports are written in batches', () => {
  it('keeps the latest report per device and writes the burst at the end of the turn', async () => {
    const s = await fresh();
    s.saveReported('dev-a', '{"n":1}', 't1');
    s.saveReported('dev-b', '{"n":2}', 't1');
    s.saveReported('dev-a', '{"n":3}', 't2');
    expect(rawReported(s, 'dev-a')).toBeNull();
    await turn();
    expect(rawReported(s, 'dev-a')).toBe('{"n":3}');
    expect(rawReported(s, 'dev-b')).toBe('{"n":2}');
    expect(s.getDevice('dev-a')?.reportedAt).toBe('t2');
    s.db.close();
  });

  it('a read in the same turn sees the queued report', async () => {
    const s = await fresh();
    s.saveReported('dev-a', '{"n":1}', 't1');
    expect(s.reportedOf('dev-a')).toBe('{"n":1}');
    expect(s.listDevices().find((d) => d.id === 'dev-a')?.reportedAt).toBe('t1');
    s.db.close();
  });

  it('orders queued reports with removal and re-provisioning', async () => {
    const s = await fresh();
    s.saveReported('dev-a', '{"before":true}', 't1');
    s.markRemoved('dev-a');
    s.saveReported('dev-a', '{"after":true}', 't2');
    await turn();
    // Written before the removal; the one after it is dropped like any report of a removed device.
    expect(rawReported(s, 'dev-a')).toBe('{"before":true}');
    s.saveReported('dev-b', '{"old":true}', 't3');
    s.upsertDevice('dev-b', []);
    await turn();
    expect(rawReported(s, 'dev-b')).toBeNull();
    s.db.close();
  });

  it('a report queued as the database closes is dropped without an error', async () => {
    const s = await fresh();
    s.saveReported('dev-a', '{"n":1}', 't1');
    s.db.close();
    await turn();
    expect(() => s.flushReports()).not.toThrow();
  });
});
