import type { Db } from '../db/open.js';
import type { Migration } from '../db/migrate.js';
import { toOutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import { parseTelemetrySample, type TelemetrySample } from '../../protocol/telemetry.js';

/**
 * Device telemetry in the cloud: the latest sample per device, nothing more. Telemetry is a
 * sample, not a record (the agent drops samples taken while offline, and counters carry running
 * totals), so keeping one row per device bounds the table by the fleet's size, whatever a device
 * sends. A history belongs in a time-series store fed from the same MQTT topic.
 */
export const TELEMETRY_V1: Migration = {
  name: 'telemetry-v1',
  sql: `
    CREATE TABLE device_telemetry (
      device_id TEXT PRIMARY KEY REFERENCES devices (id),
      sample TEXT NOT NULL,
      sampled_at TEXT NOT NULL,
      received_at TEXT NOT NULL
    );
  `,
};

/** What `GET /v1/devices/:id` and `outpost device show` carry. */
export interface LatestTelemetry {
  /** When the cloud received it (the sample's own time is `sample.at`, the device's clock). */
  receivedAt: string;
  sample: TelemetrySample;
}

/** A document larger than this is refused before parsing: 10,000 models fit well under it. */
export const MAX_TELEMETRY_BYTES = 4 * 1024 * 1024;

export class TelemetryStore {
  constructor(
    private readonly db: Db,
    private readonly log: Logger,
  ) {}

  /**
   * Validates and keeps one device's sample. The topic's device id is the authority (the broker's
   * ACL lets a device write only its own topic); a document naming another device is refused.
   * Bad input is logged and dropped, never thrown: it arrives from the network. Returns the sample
   * when it was kept, else null.
   */
  ingest(deviceId: string, payload: Buffer, now = new Date()): TelemetrySample | null {
    const sample = this.parse(deviceId, payload);
    return sample && this.keep(deviceId, sample, now) ? sample : null;
  }

  /** The validation half of ingest: the sample, or null (logged) when it is refused. */
  parse(deviceId: string, payload: Buffer): TelemetrySample | null {
    if (payload.length > MAX_TELEMETRY_BYTES) {
      this.log.warn({ device: deviceId, bytes: payload.length }, `telemetry over ${MAX_TELEMETRY_BYTES} bytes ignored`);
      return null;
    }
    let sample: TelemetrySample;
    try {
      sample = parseTelemetrySample(JSON.parse(payload.toString('utf8')));
    } catch (err) {
      this.log.warn({ device: deviceId, err: toOutpostError(err).message }, 'malformed telemetry ignored');
      return null;
    }
    if (sample.deviceId !== deviceId) {
      this.log.warn({ device: deviceId, named: sample.deviceId }, 'telemetry names another device; ignored');
      return null;
    }
    return sample;
  }

  /** The storing half of ingest: false when a newer sample is already kept. */
  keep(deviceId: string, sample: TelemetrySample, now = new Date()): boolean {
    // A sample older than the one kept (reordered QoS 0 delivery) does not replace it.
    const info = this.db
      .prepare(`
      INSERT INTO device_telemetry (device_id, sample, sampled_at, received_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (device_id) DO UPDATE SET sample = excluded.sample, sampled_at = excluded.sampled_at, received_at = excluded.received_at
      WHERE excluded.sampled_at >= device_telemetry.sampled_at
    `)
      .run(deviceId, JSON.stringify(sample), new Date(sample.at).toISOString(), now.toISOString());
    return info.changes > 0;
  }

  latest(deviceId: string): LatestTelemetry | null {
    const r = this.db.prepare('SELECT sample, received_at FROM device_telemetry WHERE device_id = ?').get(deviceId) as
      | { sample: string; received_at: string }
      | undefined;
    return r ? { receivedAt: r.received_at, sample: JSON.parse(r.sample) as TelemetrySample } : null;
  }

  /** A removed device's telemetry goes with it; re-provisioning starts without a stale sample. */
  forget(deviceId: string): void {
    this.db.prepare('DELETE FROM device_telemetry WHERE device_id = ?').run(deviceId);
  }
}
