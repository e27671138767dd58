import { OutpostError, fromErrorBody } from '../../protocol/errors/index.js';
import type { DesiredSigned } from '../../protocol/desired-state.js';
import type { ReportedState } from '../../protocol/reported-state.js';
import type { TrustedKey } from '../../protocol/signing.js';
import type { TrustStatus } from '../signing/trust.js';
import type { CommandSent } from './fleet.js';
import type { AgentConfigDraft } from './provision.js';
import type { RolloutDevice } from './rollout.js';
import type { AuditEntry, Plan, RolloutSummary, RolloutView } from './rollout-types.js';
import type { LatestTelemetry } from './telemetry.js';
import type { Deployment, DeviceRecord, Target } from './types.js';

/** The fleet routes of the cloud's HTTP API (cloud-broker/http/fleet-routes.ts), for the CLI. */
export class FleetClient {
  private readonly url: string;
  constructor(
    opts: { url: string; token: string },
    private readonly token = opts.token,
  ) {
    this.url = opts.url.replace(/\/$/, '');
  }

  provision(id: string, tags: string[]): Promise<{ device: DeviceRecord; agentConfig: AgentConfigDraft }> {
    return this.call('POST', '/v1/devices', { id, tags });
  }

  async listDevices(): Promise<DeviceRecord[]> {
    return (await this.call<{ devices: DeviceRecord[] }>('GET', '/v1/devices')).devices;
  }

  showDevice(id: string): Promise<{
    device: DeviceRecord;
    desired: DesiredSigned | null;
    reported: ReportedState | null;
    telemetry: LatestTelemetry | null;
    /** The device's last answer to each signed command. */
    commands?: Record<string, unknown>[];
  }> {
    return this.call('GET', `/v1/devices/${encodeURIComponent(id)}`);
  }

  tagDevice(id: string, add: string[], remove: string[]): Promise<{ device: DeviceRecord }> {
    return this.call('PATCH', `/v1/devices/${encodeURIComponent(id)}/tags`, { add, remove });
  }

  removeDevice(id: string): Promise<{ id: string; removed: true }> {
    return this.call('DELETE', `/v1/devices/${encodeURIComponent(id)}`);
  }

  /** With `rollout` (a policy body) the deploy is staged and the answer carries the rollout. */
  deploy(
    spec: { model: string } | { app: string },
    target: Target,
    rollout?: Record<string, unknown> | null,
  ): Promise<{ target: Target; deployments: Deployment[]; devices: string[]; rollout?: RolloutSummary }> {
    return this.call('POST', '/v1/deployments', { ...spec, target, ...(rollout ? { rollout } : {}) });
  }

  async plan(
    spec: { model: string } | { app: string },
    target: Target,
    rollout?: Record<string, unknown> | null,
  ): Promise<Plan> {
    return (await this.call<{ plan: Plan }>('POST', '/v1/plans', { ...spec, target, ...(rollout ? { rollout } : {}) }))
      .plan;
  }

  async rollouts(states?: string[]): Promise<RolloutSummary[]> {
    const q = states?.length ? `?state=${encodeURIComponent(states.join(','))}` : '';
    return (await this.call<{ rollouts: RolloutSummary[] }>('GET', `/v1/rollouts${q}`)).rollouts;
  }

  async rolloutView(id: number): Promise<RolloutView> {
    return (await this.call<{ rollout: RolloutView }>('GET', `/v1/rollouts/${id}`)).rollout;
  }

  async rolloutControl(id: number, verb: 'pause' | 'resume' | 'abort', body: object = {}): Promise<RolloutView> {
    return (await this.call<{ rollout: RolloutView }>('POST', `/v1/rollouts/${id}/${verb}`, body)).rollout;
  }

  async audit(q: { since?: string; device?: string; rollout?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
    const qs = params.size ? `?${params}` : '';
    return (await this.call<{ entries: AuditEntry[] }>('GET', `/v1/audit${qs}`)).entries;
  }

  rollback(model: string, target: Target): Promise<{ target: Target; devices: string[]; from: number; to: number }> {
    return this.call('POST', '/v1/rollbacks', { model, target });
  }

  /** A signed imperative command (sync, rollback {model}, report, telemetry) for one device. */
  sendCommand(id: string, command: string, model?: string): Promise<CommandSent> {
    return this.call('POST', `/v1/devices/${encodeURIComponent(id)}/commands`, { command, model });
  }

  trustStatus(): Promise<TrustStatus> {
    return this.call('GET', '/v1/trust');
  }

  createOnlineKey(): Promise<TrustedKey> {
    return this.call('POST', '/v1/trust/online-keys', {});
  }

  installRoot(root: unknown): Promise<{ version: number; onlineChanged: boolean; resigned: number }> {
    return this.call('POST', '/v1/trust/root', { root });
  }

  async rollout(): Promise<RolloutDevice[]> {
    return (await this.call<{ devices: RolloutDevice[] }>('GET', '/v1/rollout')).devices;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new OutpostError(
        'CLOUD_UNREACHABLE',
        `cannot reach the cloud at ${this.url} (${cause}); check --cloud or start it with \`outpost cloud start\``,
        { url: this.url },
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new OutpostError(
        'CLOUD_BAD_RESPONSE',
        `${method} ${this.url}${path} answered ${res.status} with a body that is not JSON; is this an Outpost cloud?`,
        { status: res.status },
      );
    }
    if (!res.ok) throw fromErrorBody(json, res.status);
    return json as T;
  }
}
