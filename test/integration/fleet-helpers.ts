import { createHash } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { verifyDesired, type DesiredState } from '../../protocol/desired-state.js';
import type { ReportedState } from '../../protocol/reported-state.js';
import { topics } from '../../protocol/topics.js';
import { createVersion, putApp } from '../../cloud-broker/catalog/index.js';
import type { Db } from '../../cloud-broker/db/open.js';
import type { AgentConfigDraft } from '../../cloud-broker/fleet/provision.js';

/** Publishes a real catalog version of `owner/name` whose one file has the given content. */
export function publishVersion(db: Db, id: string, content: string, framework = 'onnx'): number {
  const [owner, name] = id.split('/');
  const sha256 = createHash('sha256').update(content).digest('hex');
  const manifest = {
    id,
    model_parameters: { framework_type: framework, purpose: 'Classification', model_file: 'model.onnx' },
  };
  return createVersion(db, owner, name, {
    manifest,
    files: [{ path: 'model.onnx', sha256, size: Buffer.byteLength(content) }],
    force: true,
  }).version;
}

export function putAppModels(db: Db, app: string, models: Record<string, number>): void {
  const [owner, name] = app.split('/');
  putApp(db, { kind: 'admin', subject: 'admin' }, owner, name, models);
}

export async function waitFor<T>(
  what: string,
  get: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  ms = 8000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A device as the agent behaves on the wire (the real agent is added by the lead): connects with
 * its agent.json credentials, subscribes to its desired state, verifies each document with the
 * trusted keys and its last applied revision, and can publish a report.
 */
export class TestDevice {
  docs: DesiredState[] = [];
  rejected: string[] = [];
  client!: MqttClient;
  constructor(readonly config: AgentConfigDraft) {}

  get last(): DesiredState | undefined {
    return this.docs.at(-1);
  }

  versionOf(model: string): number | undefined {
    return this.last?.models.find((m) => m.id === model)?.version;
  }

  async connect(url = this.config.cloud.mqtt): Promise<this> {
    this.client = await mqtt.connectAsync(url, {
      username: this.config.credentials.username,
      password: this.config.credentials.token,
      clientId: this.config.deviceId,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    this.client.on('message', (_t, payload) => {
      if (payload.length === 0) return;
      try {
        this.docs.push(
          verifyDesired(payload, {
            trustedKeys: this.config.trustedKeys,
            deviceId: this.config.deviceId,
            now: new Date(),
            lastRevision: this.last?.revision ?? null,
          }),
        );
      } catch (err) {
        this.rejected.push((err as { code?: string }).code ?? String(err));
      }
    });
    await this.client.subscribeAsync(topics.desired(this.config.deviceId), { qos: 1 });
    return this;
  }

  async report(models: ReportedState['models']): Promise<void> {
    const rep: ReportedState = {
      type: 'reported',
      device: this.config.deviceId,
      agentVersion: 'test-0',
      appliedRevision: this.last?.revision ?? null,
      time: new Date().toISOString(),
      models,
      capabilities: { backends: [{ name: 'onnx', available: true }] },
    };
    await this.client.publishAsync(topics.reported(this.config.deviceId), JSON.stringify(rep), {
      qos: 1,
      retain: true,
    });
  }

  async close(): Promise<void> {
    await this.client?.endAsync(true);
  }
}
