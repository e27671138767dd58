import type { ReportedState } from '../../protocol/reported-state.js';
import type { FleetChange } from './changes.js';

/** One line of a device's recent history, as the web page's device view lists it. */
export interface DeviceEvent {
  at: string;
  kind: 'status' | 'model' | 'desired' | 'device' | 'agent';
  text: string;
  /** The error code of a failure the device reported. */
  code?: string;
}

/** Events kept per device; older ones fall off. */
export const EVENTS_PER_DEVICE = 50;

interface Seen {
  status: string | null;
  agentVersion: string | null;
  desiredError: string | null;
  models: Map<string, string>;
}

/**
 * Turns the stream of fleet changes into a short, readable log per device: connection changes,
 * each model's state transitions (with the error code of a failure), a refused desired state,
 * new desired revisions, provisioning and tags. Reports repeat the whole state each time, so a
 * transition is recorded only when it differs from what this device last reported. In memory and
 * bounded (EVENTS_PER_DEVICE per device); the audit trail is the durable record of operator actions.
 */
export class DeviceEvents {
  private readonly events = new Map<string, DeviceEvent[]>();
  private readonly seen = new Map<string, Seen>();

  observe(c: FleetChange): void {
    if (c.kind === 'telemetry') return;
    const seen = this.seenOf(c.device);
    if (c.kind === 'status') {
      if (seen.status !== c.status) this.push(c.device, { at: c.at, kind: 'status', text: `went ${c.status}` });
      seen.status = c.status;
    } else if (c.kind === 'desired') {
      this.push(c.device, { at: c.at, kind: 'desired', text: 'new desired state signed and published' });
    } else if (c.kind === 'device') {
      this.push(c.device, { at: c.at, kind: 'device', text: c.action });
      if (c.action === 'removed') this.seen.delete(c.device);
    } else {
      this.observeReport(c.device, c.report, c.at, seen);
    }
  }

  list(device: string): DeviceEvent[] {
    return [...(this.events.get(device) ?? [])].reverse();
  }

  private observeReport(device: string, r: ReportedState, at: string, seen: Seen): void {
    if (seen.agentVersion !== r.agentVersion) {
      this.push(device, { at, kind: 'agent', text: `agent ${r.agentVersion} reporting` });
      seen.agentVersion = r.agentVersion;
    }
    const refused = r.desiredError ? `${r.desiredError.code}: ${r.desiredError.message}` : null;
    if (refused && refused !== seen.desiredError)
      this.push(device, {
        at,
        kind: 'desired',
        text: `refused the desired state: ${r.desiredError!.message}`,
        code: r.desiredError!.code,
      });
    seen.desiredError = refused;
    const now = new Set<string>();
    for (const m of r.models) {
      now.add(m.id);
      const key = `${m.state}|${m.version}|${m.activeVersion}|${m.error?.code ?? ''}`;
      if (seen.models.get(m.id) === key) continue;
      seen.models.set(m.id, key);
      this.push(device, { at, kind: 'model', text: describeModel(m), ...(m.error ? { code: m.error.code } : {}) });
    }
    for (const id of [...seen.models.keys()]) {
      if (now.has(id)) continue;
      seen.models.delete(id);
      this.push(device, { at, kind: 'model', text: `${id} removed` });
    }
  }

  private seenOf(device: string): Seen {
    let s = this.seen.get(device);
    if (!s) {
      s = { status: null, agentVersion: null, desiredError: null, models: new Map() };
      this.seen.set(device, s);
    }
    return s;
  }

  private push(device: string, e: DeviceEvent): void {
    let list = this.events.get(device);
    if (!list) this.events.set(device, (list = []));
    list.push(e);
    if (list.length > EVENTS_PER_DEVICE) list.shift();
  }
}

function describeModel(m: ReportedState['models'][number]): string {
  const v = m.version === null ? '' : ` v${m.version}`;
  if (m.state === 'active') return `${m.id} v${m.activeVersion} active`;
  if (m.state === 'failed') return `${m.id}${v} failed: ${m.error?.message ?? 'no reason given'}`;
  if (m.state === 'rolled-back') return `${m.id} rolled back to v${m.activeVersion ?? '-'}`;
  if (m.state === 'downloading' && m.progress) return `${m.id}${v} downloading`;
  return `${m.id}${v} ${m.state}`;
}
