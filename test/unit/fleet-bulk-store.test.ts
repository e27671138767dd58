import { describe, expect, it } from 'vitest';
import { FleetStore } from '../../cloud-broker/fleet/store.js';
import { openTestDb } from '../helpers/test-db.js';

// Whole-fleet reads and writes take a fixed number of statements, not one per device: on
// PostgreSQL each statement is a round trip on the replica's event loop (docs/scale.md).
async function fleetOf(n: number): Promise<FleetStore> {
  const s = new FleetStore(await openTestDb());
  for (let i = 0; i < n; i++) s.upsertDevice(`dev-${String(i).padStart(3, '0')}`, i % 2 ? ['odd', 'all'] : ['all']);
  return s;
}

const counted = <T>(s: FleetStore, fn: () => T): [T, number] => {
  const before = s.db.stats().queries;
  const out = fn();
  return [out, s.db.stats().queries - before];
};

describe('fleet store: bulk reads and writes', () => {
  it('lists every device with its tags in two statements', async () => {
    const s = await fleetOf(30);
    s.markRemoved('dev-004');
    const [list, n] = counted(s, () => s.listDevices());
    expect(n).toBe(2);
    expect(list).toHaveLength(29);
    expect(list.find((d) => d.id === 'dev-003')?.tags).toEqual(['all', 'odd']);
    expect(list.find((d) => d.id === 'dev-002')?.tags).toEqual(['all']);
    expect(list.map((d) => d.tags)).toEqual(list.map((d) => s.tagsOf(d.id)));
    s.db.close();
  });

  it('signs 250 devices in two UPDATEs, keeping the previous document only when the models changed', async () => {
    const s = await fleetOf(250);
    const ids = s.listDevices().map((d) => d.id);
    const rows = (rev: number, digest: string) =>
      ids.map((id) => ({ id, revision: rev, doc: `{"r":${rev}}`, digest, expires: `2030-01-0${rev}` }));
    const [, n] = counted(s, () => s.saveDesiredMany(rows(1, 'a')));
    expect(n).toBe(2);
    s.saveDesiredMany(rows(2, 'b'));
    expect(s.desiredOf('dev-007')).toEqual({ doc: '{"r":2}', digest: 'b', expires: '2030-01-02', revision: 2 });
    expect(s.desiredDocs('dev-007')).toEqual(['{"r":2}', '{"r":1}']);
    // Same models (a re-sign at half-life): the older previous document stays.
    s.saveDesiredMany(rows(3, 'b'));
    expect(s.desiredDocs('dev-249')).toEqual(['{"r":3}', '{"r":1}']);
    expect(s.desiredOfAll().get('dev-000')).toEqual({
      doc: '{"r":3}',
      digest: 'b',
      expires: '2030-01-03',
      revision: 3,
    });
    // The trigger still refuses a lower revision.
    expect(() => s.saveDesiredMany(rows(2, 'c'))).toThrow();
    const [docs, m] = counted(s, () => s.documentsOfAll());
    expect(m).toBe(1);
    expect(docs.get('dev-100')).toEqual({ reported: null, desired: '{"r":3}' });
    s.db.close();
  });
});
