import { describe, expect, it } from 'vitest';
import { openTestDb } from '../helpers/test-db.js';
import { FleetStore } from '../../cloud-broker/fleet/store.js';
import { ChangeFeed, type FleetChange } from '../../cloud-broker/fleet/changes.js';
import { ReportIngest } from '../../cloud-broker/fleet/report-ingest.js';
import { TelemetryStore } from '../../cloud-broker/fleet/telemetry.js';
import { silentLogger } from '../../protocol/log.js';
import { OutpostError } from '../../protocol/errors/index.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const rawReported = (s: FleetStore, id: string): string | null =>
  (s.db.prepare('SELECT reported FROM devices WHERE id = ?').get(id) as { reported: string | null }).reported;

async function fresh(): Promise<FleetStore> {
  const s = new FleetStore(await openTestDb());
  s.upsertDevice('dev-a', []);
  s.upsertDevice('dev-b', []);
  return s;
}

/**
 * A store whose next write fails mid-transaction, once. The fence runs inside the write's
 * transaction, as the lease check does on a shared database; throwing there is what a timed-out
 * or lost connection does in the middle of the write.
 */
async function failingOnce(): Promise<{ s: FleetStore; errors: unknown[] }> {
  const s = await fresh();
  const errors: unknown[] = [];
  s.onFlushError = (err) => errors.push(err);
  let failures = 1;
  s.fence = () => {
    if (failures-- > 0) throw new OutpostError('CLOUD_DB_UNAVAILABLE', 'the database did not answer');
    return true;
  };
  return { s, errors };
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

const statusOf = (s: FleetStore, id: string) => s.getDevice(id)?.status ?? null;

describe('fleet store: statuses are written with the reports', () => {
  it('writes the burst of one turn in one transaction of one UPDATE per kind, the latest per device', async () => {
    const s = await fresh();
    for (let i = 0; i < 50; i++) s.upsertDevice(`dev-${i}`, []);
    const before = s.db.stats().queries;
    for (let i = 0; i < 50; i++) {
      s.saveStatus(`dev-${i}`, 'online', 't1');
      s.saveReported(`dev-${i}`, `{"n":${i}}`, 't1');
    }
    s.saveStatus('dev-7', 'offline', 't2');
    await turn();
    // BEGIN, the two UPDATEs, COMMIT (PostgreSQL adds its write lock), whatever the number of devices.
    expect(s.db.stats().queries - before).toBe(s.db.engine === 'postgres' ? 5 : 4);
    expect(statusOf(s, 'dev-0')).toBe('online');
    expect(s.getDevice('dev-7')).toMatchObject({ status: 'offline', statusAt: 't2' });
    expect(rawReported(s, 'dev-49')).toBe('{"n":49}');
    s.db.close();
  });

  it('a write that fails in the background loses nothing: queued again, a newer report kept, retried', async () => {
    const { s, errors } = await failingOnce();
    s.saveReported('dev-a', '{"n":1}', 't1');
    s.saveReported('dev-b', '{"n":2}', 't1');
    s.saveStatus('dev-a', 'online', 't1');
    await turn();
    expect(errors).toHaveLength(1);
    expect((errors[0] as OutpostError).code).toBe('CLOUD_DB_UNAVAILABLE');
    expect(rawReported(s, 'dev-a')).toBeNull();
    // A newer report of dev-a arrives before the retry: it wins over the re-queued one.
    s.saveReported('dev-a', '{"n":3}', 't2');
    await turn();
    expect(rawReported(s, 'dev-a')).toBe('{"n":3}');
    expect(rawReported(s, 'dev-b')).toBe('{"n":2}');
    expect(s.getDevice('dev-a')?.status).toBe('online');
    s.db.close();
  });

  it('a failed background write is retried on its own, without a new report to trigger it', async () => {
    const { s, errors } = await failingOnce();
    s.saveReported('dev-a', '{"n":1}', 't1');
    await turn();
    expect(errors).toHaveLength(1);
    const deadline = Date.now() + 10_000;
    while (rawReported(s, 'dev-a') === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(rawReported(s, 'dev-a')).toBe('{"n":1}');
    s.db.close();
  });

  it("drops a removed device's status and writes nothing when the fence fails", async () => {
    const s = await fresh();
    s.markRemoved('dev-a');
    s.saveStatus('dev-a', 'online', 't1');
    s.saveStatus('dev-b', 'online', 't1');
    await turn();
    expect(statusOf(s, 'dev-a')).toBeNull();
    expect(statusOf(s, 'dev-b')).toBe('online');
    s.fence = () => false;
    s.saveStatus('dev-b', 'offline', 't2');
    await turn();
    expect(statusOf(s, 'dev-b')).toBe('online');
    s.db.close();
  });
});

describe('report ingestion: one liveness check per turn', () => {
  it('checks the devices of a burst of status messages in one statement; unknown and removed ones are dropped', async () => {
    const s = await fresh();
    for (let i = 0; i < 20; i++) s.upsertDevice(`dev-${i}`, []);
    s.markRemoved('dev-3');
    const changes = new ChangeFeed(silentLogger);
    const seen: string[] = [];
    changes.watch((c: FleetChange) => {
      if (c.kind === 'status') seen.push(c.device);
    });
    const ingest = new ReportIngest(s, new TelemetryStore(s.db, silentLogger), changes, silentLogger, () => undefined);
    const before = s.db.stats().queries;
    for (let i = 0; i < 20; i++) ingest.ingest(`outpost/v1/devices/dev-${i}/status`, Buffer.from('online'));
    ingest.ingest('outpost/v1/devices/ghost/status', Buffer.from('online'));
    expect(seen).toEqual([]);
    ingest.drain();
    // One SELECT for the 21 devices; the writes wait for the store's batch.
    expect(s.db.stats().queries - before).toBe(1);
    expect(seen).toHaveLength(19);
    expect(seen).not.toContain('dev-3');
    expect(seen).not.toContain('ghost');
    await turn();
    expect(statusOf(s, 'dev-0')).toBe('online');
    expect(statusOf(s, 'dev-3')).toBeNull();

    // A replica that does not lead tells its watchers but writes nothing.
    ingest.writes = () => false;
    ingest.ingest('outpost/v1/devices/dev-0/status', Buffer.from('offline'));
    await turn();
    await turn();
    expect(seen).toHaveLength(20);
    expect(statusOf(s, 'dev-0')).toBe('online');
    s.db.close();
  });
});
