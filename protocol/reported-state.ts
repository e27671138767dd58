import { OutpostError } from './errors/index.js';
import { parseModelId } from './ids.js';
import { isDeviceId } from './topics.js';

/**
 * The reported-state document: the device's own account of its models, published retained (QoS 1)
 * on outpost/v1/devices/{id}/reported. The cloud's view of the fleet is built only from these.
 *
 * Per model: `version` is the version the device is working toward (the desired one, or the one
 * it found current on disk; null is accepted from older agents), and `activeVersion` the one apps
 * are served right now (null before the first install). `state`, moved on the device by the
 * transition table of agent/sync/lifecycle.ts:
 *   pending      desired, no attempt started yet
 *   downloading  with `progress: {bytes, total}`
 *   verifying    staged files checked against the signed metadata
 *   installing   activation gate (load + trial run) and the flip of `current`
 *   active       `activeVersion === version`
 *   failed       with `error: {code, message}`; the previous activeVersion keeps serving (a failed
 *                activation included: the old version is never left)
 *   rolled-back  a rollback command flipped to an earlier kept version; `error` says why the
 *                desired one is pinned (SYNC_PINNED_BY_ROLLBACK) until the desired state changes
 */
export const MODEL_STATES = [
  'pending',
  'downloading',
  'verifying',
  'installing',
  'active',
  'failed',
  'rolled-back',
] as const;
export type ModelState = (typeof MODEL_STATES)[number];

export interface ReportedModel {
  id: string;
  version: number | null;
  activeVersion: number | null;
  state: ModelState;
  progress?: { bytes: number; total: number };
  error?: { code: string; message: string };
  /**
   * Present when the active version serves raw KServe tensors only: its outputs are in no layout
   * the post-processor reads, so `/predict` answers RUNTIME_RAW_TENSORS_ONLY. `reason` says which
   * layout could not be read and what to set (`architecture`, `output_layer_names`, `input_format`).
   * `unhealthy`: the active version is installed but does not serve, because its backend gave up
   * on it (RUNTIME_WORKER_UNHEALTHY: its worker thread kept dying); `reason` says what to do.
   */
  serving?: { mode: 'raw-tensors' | 'unhealthy'; reason: { code: string; message: string } };
}

export interface BackendCapability {
  name: string;
  available: boolean;
  reason?: string;
  frameworks?: string[];
  /** True only when it ran on real hardware here; a simulation is never reported as hardware. */
  hardware?: boolean;
  details?: Record<string, unknown>;
}

export interface Capabilities {
  backends: BackendCapability[];
  /** Probe results (Jetson model, JetPack, accelerators); open-ended by design. */
  host?: Record<string, unknown>;
}

export interface ReportedState {
  type: 'reported';
  device: string;
  agentVersion: string;
  /** The revision of the last desired state the agent verified and planned from; null before one. */
  appliedRevision: number | null;
  /** ISO 8601 time of the report. */
  time: string;
  models: ReportedModel[];
  capabilities: Capabilities;
  /** Why the last desired-state document received was refused (bad signature, replay, expiry...). */
  desiredError?: { code: string; message: string };
  /**
   * ISO 8601 time the agent process started (optional: older agents omit it). A rollout's soak
   * reads a change of it as a restart of the agent.
   */
  startedAt?: string;
}

function bad(key: string, what: string, value?: unknown): OutpostError {
  const shown = value === undefined ? '' : `, got ${JSON.stringify(value)?.slice(0, 80)}`;
  return new OutpostError('REPORTED_MALFORMED', `reported state: ${key} ${what}${shown}`, { key });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isVersionOrNull = (v: unknown): v is number | null => v === null || (isNat(v) && v >= 1);

function parseModel(v: unknown, key: string): ReportedModel {
  if (!isObject(v)) throw bad(key, 'must be an object', v);
  try {
    parseModelId(v.id, `${key}.id`);
  } catch {
    throw bad(`${key}.id`, 'must be "owner/name"', v.id);
  }
  if (!isVersionOrNull(v.version)) throw bad(`${key}.version`, 'must be a positive integer or null', v.version);
  if (!isVersionOrNull(v.activeVersion))
    throw bad(`${key}.activeVersion`, 'must be a positive integer or null', v.activeVersion);
  if (!MODEL_STATES.includes(v.state as ModelState))
    throw bad(`${key}.state`, `must be one of ${MODEL_STATES.join(', ')}`, v.state);
  const out: ReportedModel = {
    id: v.id as string,
    version: v.version,
    activeVersion: v.activeVersion,
    state: v.state as ModelState,
  };
  if (v.progress !== undefined) {
    const p = v.progress;
    if (!isObject(p) || !isNat(p.bytes) || !isNat(p.total))
      throw bad(`${key}.progress`, 'must be {bytes, total} (non-negative integers)', p);
    out.progress = { bytes: p.bytes, total: p.total };
  }
  if (v.serving !== undefined) {
    const sv = v.serving;
    if (
      !isObject(sv) ||
      (sv.mode !== 'raw-tensors' && sv.mode !== 'unhealthy') ||
      !isObject(sv.reason) ||
      typeof sv.reason.code !== 'string' ||
      typeof sv.reason.message !== 'string'
    )
      throw bad(`${key}.serving`, 'must be {mode: "raw-tensors" | "unhealthy", reason: {code, message}}', sv);
    out.serving = {
      mode: sv.mode,
      reason: { code: sv.reason.code.slice(0, 64), message: sv.reason.message.slice(0, 2000) },
    };
  }
  if (out.state === 'downloading' && !out.progress)
    throw bad(`${key}.progress`, 'is required when state is downloading');
  if (v.error !== undefined) {
    const e = v.error;
    if (!isObject(e) || typeof e.code !== 'string' || typeof e.message !== 'string')
      throw bad(`${key}.error`, 'must be {code, message}', e);
    out.error = { code: e.code, message: e.message.slice(0, 2000) };
  }
  if (out.state === 'failed' && !out.error) throw bad(`${key}.error`, 'is required when state is failed');
  return out;
}

function parseCapabilities(v: unknown): Capabilities {
  if (!isObject(v) || !Array.isArray(v.backends)) throw bad('capabilities', 'must be {backends: [...]}', v);
  const backends = v.backends.map((b, i): BackendCapability => {
    const key = `capabilities.backends[${i}]`;
    if (!isObject(b) || typeof b.name !== 'string' || typeof b.available !== 'boolean')
      throw bad(key, 'must be {name, available, reason?}', b);
    const out: BackendCapability = { name: b.name, available: b.available };
    if (typeof b.reason === 'string') out.reason = b.reason;
    if (Array.isArray(b.frameworks) && b.frameworks.every((f) => typeof f === 'string'))
      out.frameworks = b.frameworks as string[];
    if (typeof b.hardware === 'boolean') out.hardware = b.hardware;
    if (isObject(b.details)) out.details = b.details;
    return out;
  });
  const out: Capabilities = { backends };
  if (v.host !== undefined) {
    if (!isObject(v.host)) throw bad('capabilities.host', 'must be an object', v.host);
    out.host = v.host;
  }
  return out;
}

/** Parses a report (raw MQTT payload or parsed JSON). The cloud calls it once per message. */
export function parseReported(doc: unknown): ReportedState {
  let v = doc;
  if (typeof doc === 'string' || Buffer.isBuffer(doc)) {
    try {
      v = JSON.parse(doc.toString());
    } catch (err) {
      throw bad('document', `is not JSON (${(err as Error).message})`);
    }
  }
  if (!isObject(v)) throw bad('document', 'must be a JSON object', typeof v);
  if (v.type !== 'reported') throw bad('type', 'must be "reported"', v.type);
  if (!isDeviceId(v.device)) throw bad('device', 'must be a device id', v.device);
  if (typeof v.agentVersion !== 'string' || v.agentVersion.length === 0 || v.agentVersion.length > 64)
    throw bad('agentVersion', 'must be a short string', v.agentVersion);
  if (!(v.appliedRevision === null || (isNat(v.appliedRevision) && v.appliedRevision >= 1)))
    throw bad('appliedRevision', 'must be a positive integer or null', v.appliedRevision);
  if (typeof v.time !== 'string' || Number.isNaN(Date.parse(v.time)))
    throw bad('time', 'must be an ISO 8601 time', v.time);
  if (!Array.isArray(v.models)) throw bad('models', 'must be an array', v.models);
  const models = v.models.map((m, i) => parseModel(m, `models[${i}]`));
  const out: ReportedState = {
    type: 'reported',
    device: v.device,
    agentVersion: v.agentVersion,
    appliedRevision: v.appliedRevision,
    time: v.time,
    models,
    capabilities: parseCapabilities(v.capabilities),
  };
  if (v.startedAt !== undefined) {
    if (typeof v.startedAt !== 'string' || v.startedAt.length > 64 || Number.isNaN(Date.parse(v.startedAt)))
      throw bad('startedAt', 'must be an ISO 8601 time', v.startedAt);
    out.startedAt = v.startedAt;
  }
  if (v.desiredError !== undefined) {
    const e = v.desiredError;
    if (!isObject(e) || typeof e.code !== 'string' || typeof e.message !== 'string')
      throw bad('desiredError', 'must be {code, message}', e);
    out.desiredError = { code: e.code, message: e.message.slice(0, 2000) };
  }
  return out;
}
