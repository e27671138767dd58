import type { BackendCapability, Capabilities } from '../../protocol/reported-state.js';
import { DeviceEvents, type DeviceEvent } from './device-events.js';
import type { Fleet } from './fleet.js';
import { rolloutOf, type RolloutDevice } from './rollout.js';
import { TelemetryHistory, type TelemetryPoint } from './telemetry-history.js';

/** The device states the fleet list filters on. */
export const ROW_STATES = ['online', 'offline', 'converged', 'updating', 'failed'] as const;
export type RowState = (typeof ROW_STATES)[number];

export interface FleetQuery {
  offset: number;
  limit: number;
  tag?: string;
  state?: RowState;
  /** `owner/name`: devices that are meant to run it or report it. */
  model?: string;
  /** A part of the device id. */
  q?: string;
}

/** One line of the fleet list: the rollout view of the device plus what an operator scans for. */
export interface FleetRow extends RolloutDevice {
  statusAt: string | null;
  /** The newest of: status change, report, telemetry sample. */
  lastSeen: string | null;
  backends: Pick<BackendCapability, 'name' | 'available' | 'hardware' | 'reason'>[];
  /** Short facts from the host probe ("Jetson Xavier NX", "TensorRT 8.5"); empty on a plain host. */
  hardware: string[];
  /** The last samples as they came, oldest first, for sparklines. */
  recent: TelemetryPoint[];
}

export interface FleetPage {
  total: number;
  offset: number;
  limit: number;
  devices: FleetRow[];
  /** Every tag and model in the fleet, for the filter menus. */
  facets: { tags: string[]; models: string[] };
}

export interface DeviceView {
  device: FleetRow;
  capabilities: Capabilities | null;
  events: DeviceEvent[];
  history: { hour: TelemetryPoint[]; day: TelemetryPoint[] };
}

/**
 * The read side of the web page over the fleet: filtered, paged device rows joined from the
 * signed desired states, the reports, and the in-memory telemetry history and device events it
 * keeps by watching the fleet's changes. Paging happens here, on the server, so the page
 * receives one page of rows whatever the fleet's size.
 */
export class FleetView {
  readonly history = new TelemetryHistory();
  readonly events = new DeviceEvents();
  private readonly stop: () => void;

  constructor(private readonly fleet: Fleet) {
    this.stop = fleet.changes.watch((c) => {
      if (c.kind === 'telemetry') this.history.add(c.device, c.sample, c.at);
      else if (c.kind === 'device' && c.action === 'removed') this.history.forget(c.device);
      this.events.observe(c);
    });
  }

  close(): void {
    this.stop();
  }

  page(q: FleetQuery): FleetPage {
    const tags = new Set<string>();
    const models = new Set<string>();
    const matching: FleetRow[] = [];
    for (const { device: d, signed, reported: r } of this.fleet.devicesWithState()) {
      for (const t of d.tags) tags.add(t);
      if (q.tag && !d.tags.includes(q.tag)) continue;
      if (q.q && !d.id.toLowerCase().includes(q.q.toLowerCase())) continue;
      const rd = rolloutOf(d, signed, r);
      for (const m of rd.models) models.add(m.id);
      if (q.model && !rd.models.some((m) => m.id === q.model)) continue;
      if (q.state && !hasState(rd, q.state)) continue;
      matching.push(this.row(rd, d.statusAt, r?.capabilities ?? null));
    }
    return {
      total: matching.length,
      offset: q.offset,
      limit: q.limit,
      devices: matching.slice(q.offset, q.offset + q.limit),
      facets: { tags: [...tags].sort(), models: [...models].sort() },
    };
  }

  device(id: string): DeviceView {
    const d = this.fleet.getDevice(id);
    const r = this.fleet.reportedOf(d.id);
    const now = Date.now();
    return {
      device: this.row(rolloutOf(d, this.fleet.signedOf(d.id), r), d.statusAt, r?.capabilities ?? null),
      capabilities: r?.capabilities ?? null,
      events: this.events.list(d.id),
      history: { hour: this.history.points(d.id, 'hour', now), day: this.history.points(d.id, 'day', now) },
    };
  }

  private row(rd: RolloutDevice, statusAt: string | null, caps: Capabilities | null): FleetRow {
    const recent = this.history.points(rd.device, 'recent');
    const seen = [statusAt, rd.reportedAt, recent[recent.length - 1]?.at ?? null].filter((x): x is string => !!x);
    return {
      ...rd,
      statusAt,
      // ISO 8601 strings of one clock sort as times do.
      lastSeen: seen.sort().at(-1) ?? null,
      backends: (caps?.backends ?? []).map((b) => ({
        name: b.name,
        available: b.available,
        ...(b.hardware !== undefined ? { hardware: b.hardware } : {}),
        ...(b.reason ? { reason: b.reason } : {}),
      })),
      hardware: hardwareOf(caps?.host),
      recent,
    };
  }
}

function hasState(d: RolloutDevice, s: RowState): boolean {
  const failed = d.desiredError !== undefined || d.models.some((m) => m.state === 'failed');
  switch (s) {
    case 'online':
      return d.status === 'online';
    case 'offline':
      return d.status !== 'online';
    case 'failed':
      return failed;
    case 'converged':
      return d.converged;
    case 'updating':
      return !d.converged && !failed && d.models.some((m) => m.desired !== null);
  }
}

/** Facts worth a column from the agent's host probe (agent/system/probe.ts); unknown keys are ignored. */
export function hardwareOf(host: Record<string, unknown> | undefined): string[] {
  if (!host) return [];
  const out: string[] = [];
  const j = host.jetson as { model?: unknown; jetpack?: unknown } | null | undefined;
  if (j && typeof j.model === 'string')
    out.push(typeof j.jetpack === 'string' ? `${j.model} (JetPack ${j.jetpack})` : j.model);
  if (typeof host.tensorrt === 'string') out.push(`TensorRT ${host.tensorrt}`);
  if (typeof host.cuda === 'string') out.push(`CUDA ${host.cuda}`);
  if (Array.isArray(host.hailo) && host.hailo.length > 0) out.push(`Hailo x${host.hailo.length}`);
  if (Array.isArray(host.myriad) && host.myriad.length > 0) out.push(`Myriad x${host.myriad.length}`);
  const cv = host.opencv as { version?: unknown } | null | undefined;
  if (cv && typeof cv.version === 'string') out.push(`OpenCV ${cv.version}`);
  return out;
}
