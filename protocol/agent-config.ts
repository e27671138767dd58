import type * as Crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { isAbsolute } from 'node:path';
import { OutpostError } from './errors/index.js';
import { isModelIdPart } from './ids.js';
import { show as showJson } from './show.js';
import { rootShapeProblem } from './trust-root-shape.js';

/**
 * The agent's configuration document, `/etc/outpost/agent.json`. The cloud's `device provision`
 * writes it and the daemon reads it; both go through `parseAgentConfig`, so this file is the one
 * definition of what a valid config is.
 *
 * `trustedRoot` and `trustedKeys` are checked for their shape here; reading their keys and the
 * root's full TUF parse are `checkAgentConfigRoot`'s (agent-config-root.ts), which every reader
 * that trusts them runs as well.
 *
 * Invariants of a parsed config: every key is present (defaults filled in), every path is
 * absolute, every number is inside its documented range, and no unknown key survived (a typo in a
 * daemon's config must fail loudly at start, not silently fall back to a default).
 */
export interface AgentConfig {
  deviceId: string;
  /**
   * `ca`: PEM certificate(s) the agent trusts for the broker's TLS certificate (`mqtts://`,
   * `wss://`) instead of the system's public CAs; absent = the system's CAs. Not used for HTTP.
   */
  cloud: { http: string; mqtt: string; ca?: string };
  credentials: { username: string; token: string };
  /** Ed25519 public keys (PEM, SPKI) the agent trusts for signed metadata. */
  trustedKeys: TrustedKey[];
  /**
   * The TUF root metadata written at provisioning (docs/security.md, "Keys"); absent in configs
   * provisioned before roots existed, where trustedKeys act as an implicit root v1.
   */
  trustedRoot?: Record<string, unknown>;
  tags: string[];
  modelsDir: string;
  socket: string;
  /** File mode of the Unix socket, e.g. 0o660 (JSON accepts "0660" or a number). */
  socketMode: number;
  /** How many installed versions of a model stay on disk for instant rollback. */
  keepVersions: number;
  download: { parallel: number; minFreeBytes: number; retries: number };
  telemetry: { intervalSeconds: number; enabled: boolean };
  log: { level: LogLevel };
  api: {
    maxBodyBytes: number;
    maxConcurrentPerModel: number;
    maxBytesInFlight: number;
    requestTimeoutMs: number;
    maxConnections: number;
  };
  mqtt: { keepaliveSeconds: number; reconnectMinMs: number; reconnectMaxMs: number; maxQueued: number };
  /** The least time between two walks of the root chain (a flood of unknown keys costs one walk per window). */
  trust: { minRefreshMs: number };
  /**
   * How onnxruntime sessions run (docs/performance.md): `workers` threads that run them (0 = on
   * the event loop), intra-/inter-op threads per session (intraOpThreads 0 = every core but one
   * when workers > 0, else every core), and how many runs may wait per model before 503
   * RUNTIME_QUEUE_FULL.
   */
  onnx: {
    workers: number;
    intraOpThreads: number;
    interOpThreads: number;
    executionMode: 'sequential' | 'parallel';
    maxQueuedPerModel: number;
    /** A model whose trial run takes at least this long (microseconds) runs in a worker; lighter ones on the event loop. */
    workerMinMicros: number;
    /** Replacements of a dead worker thread allowed within workerRestartWindowMs; then its models are unhealthy. */
    workerRestarts: number;
    workerRestartWindowMs: number;
  };
}

/** Config messages quote a value shorter than model messages: a key path comes with it. */
const show = (v: unknown): string => showJson(v, 60);

export interface TrustedKey {
  keyid: string;
  publicKey: string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_AGENT_CONFIG_PATH = '/etc/outpost/agent.json';

/** Defaults of every optional key (the required ones are deviceId, cloud, credentials, trustedKeys). */
export const AGENT_CONFIG_DEFAULTS = Object.freeze({
  tags: [] as string[],
  modelsDir: '/var/lib/outpost/models',
  socket: '/run/outpost/agent.sock',
  socketMode: 0o660,
  keepVersions: 3,
  download: { parallel: 4, minFreeBytes: 256 * 1024 * 1024, retries: 5 },
  telemetry: { intervalSeconds: 60, enabled: true },
  log: { level: 'info' as LogLevel },
  api: {
    maxBodyBytes: 64 * 1024 * 1024,
    maxConcurrentPerModel: 4,
    maxBytesInFlight: 512 * 1024 * 1024,
    requestTimeoutMs: 30_000,
    maxConnections: 256,
  },
  mqtt: { keepaliveSeconds: 30, reconnectMinMs: 1_000, reconnectMaxMs: 60_000, maxQueued: 1_000 },
  trust: { minRefreshMs: 30_000 },
  onnx: {
    workers: 1,
    intraOpThreads: 0,
    interOpThreads: 1,
    executionMode: 'sequential' as 'sequential' | 'parallel',
    maxQueuedPerModel: 64,
    workerMinMicros: 500,
    workerRestarts: 5,
    workerRestartWindowMs: 60_000,
  },
});

/** Where a key's value came from: a file path for all keys, or per key (env overrides). */
export type ConfigSource = string | ((key: string) => string);

export interface ConfigIssue {
  code: 'CONFIG_INVALID' | 'CONFIG_UNKNOWN_KEY';
  key: string;
  message: string;
  source: string;
}

// The schema is a tree of leaf checkers; the tree's keys are also the list of known keys.
type Check = (v: unknown, key: string) => unknown;
type Schema = { [k: string]: Check | Schema };

const int =
  (min: number, max: number): Check =>
  (v, key) => {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max) return v;
    throw issue(key, `must be an integer ${min}..${max}, got ${show(v)}`);
  };
const bool: Check = (v, key) => {
  if (typeof v === 'boolean') return v;
  throw issue(key, `must be true or false, got ${show(v)}`);
};
const text =
  (re: RegExp, what: string): Check =>
  (v, key) => {
    if (typeof v === 'string' && re.test(v)) return v;
    throw issue(key, `must be ${what}, got ${show(v)}`);
  };
const absPath: Check = (v, key) => {
  if (typeof v === 'string' && isAbsolute(v) && !v.includes('\0') && v.length <= 4096) return v;
  throw issue(key, `must be an absolute path, got ${show(v)}`);
};
const url =
  (schemes: string[]): Check =>
  (v, key) => {
    let u: URL | undefined;
    try {
      u = typeof v === 'string' ? new URL(v) : undefined;
    } catch {
      u = undefined;
    }
    if (u && schemes.includes(u.protocol.slice(0, -1)) && u.hostname !== '') return v;
    throw issue(key, `must be a ${schemes.join('/')} URL, got ${show(v)}`);
  };
const oneOf =
  <T extends string>(values: readonly T[]): Check =>
  (v, key) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v;
    throw issue(key, `must be one of ${values.join(', ')}, got ${show(v)}`);
  };
const fileMode: Check = (v, key) => {
  // JSON has no octal literals, so "0660" / "660" strings are the readable form.
  const n = typeof v === 'string' && /^0?[0-7]{3}$/.test(v) ? parseInt(v, 8) : v;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0o777) return n;
  throw issue(key, `must be a file mode like "0660", got ${show(v)}`);
};
const deviceId = text(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a device id (letters, digits, . _ -, at most 64)');
const secret: Check = (v, key) => {
  if (typeof v === 'string' && v.length >= 8 && v.length <= 4096 && !/\s/.test(v)) return v;
  // Never echo a secret back, not even a wrong one.
  throw issue(key, `must be a string of 8..4096 characters without spaces (value not shown)`);
};
const tag: Check = (v, key) => {
  if (typeof v === 'string' && isModelIdPart(v)) return v;
  throw issue(key, `must be a tag (letters, digits, . _ -, at most 64), got ${show(v)}`);
};
const trustedKey: Check = (v, key) => {
  const k = v as Record<string, unknown> | null;
  if (!k || typeof k !== 'object' || Array.isArray(k)) throw issue(key, `must be {keyid, publicKey}, got ${show(v)}`);
  const extra = Object.keys(k).filter((x) => x !== 'keyid' && x !== 'publicKey');
  if (extra.length)
    throw issue(`${key}.${extra[0]}`, 'is not a known key (known: keyid, publicKey)', 'CONFIG_UNKNOWN_KEY');
  const keyid = text(/^[A-Za-z0-9._:-]{1,128}$/, 'a key id (1..128 of letters, digits, . _ : -)')(
    k.keyid,
    `${key}.keyid`,
  ) as string;
  if (typeof k.publicKey !== 'string' || !k.publicKey.includes('-----BEGIN PUBLIC KEY-----')) {
    throw issue(`${key}.publicKey`, 'must be a PEM public key ("-----BEGIN PUBLIC KEY-----...")');
  }
  // That it is an Ed25519 key is checkAgentConfigRoot's (agent-config-root.ts): reading a key
  // needs node:crypto, which the agent's start does not otherwise load.
  return { keyid, publicKey: k.publicKey };
};
/** Why a PEM is not an Ed25519 public key, or undefined (agent-config-root.ts asks it). */
export function ed25519Problem(pem: string): string | undefined {
  let type: string | undefined;
  try {
    type = crypto().createPublicKey(pem).asymmetricKeyType;
  } catch {
    type = undefined;
  }
  return type === 'ed25519' ? undefined : `must be an Ed25519 public key, got ${type ?? 'an unreadable PEM'}`;
}
/** node:crypto on first use: a config without `cloud.ca` is parsed without it. */
function crypto(): typeof Crypto {
  return createRequire(import.meta.url)('node:crypto') as typeof Crypto;
}
/** What a bad trustedRoot is told, by the shape check here and by agent-config-root.ts. */
export function rootIssueMessage(problem: string): string {
  return `must be TUF root metadata as \`outpost device provision\` writes it: root metadata: ${problem}`;
}
// The shape only: the full TUF parse is checkAgentConfigRoot's (agent-config-root.ts says why).
const rootMetadata: Check = (v, key) => {
  const problem = rootShapeProblem(v);
  if (problem) throw issue(key, rootIssueMessage(problem));
  return v;
};
/** The PEM certificate blocks in a text, in order (the cloud's TLS checks use it too). */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g) ?? [];
}
const caBundle: Check = (v, key) => {
  // Each block must parse: a truncated paste would otherwise surface only as a TLS failure later.
  const blocks = typeof v === 'string' && v.length <= 256 * 1024 ? pemCertificates(v) : [];
  if (blocks.length === 0) throw issue(key, 'must be one or more PEM certificates ("-----BEGIN CERTIFICATE-----...")');
  blocks.forEach((b, i) => {
    try {
      new (crypto().X509Certificate)(b);
    } catch {
      throw issue(key, `certificate ${i + 1} of ${blocks.length} is not a readable X.509 certificate`);
    }
  });
  return v;
};
const listOf =
  (item: Check, min: number, max: number): Check =>
  (v, key) => {
    if (!Array.isArray(v) || v.length < min || v.length > max)
      throw issue(key, `must be a list of ${min}..${max} entries, got ${show(v)}`);
    return v.map((x, i) => item(x, `${key}[${i}]`));
  };

const SCHEMA: Schema = {
  deviceId,
  cloud: { http: url(['http', 'https']), mqtt: url(['mqtt', 'mqtts', 'ws', 'wss', 'tcp', 'tls']), ca: caBundle },
  credentials: { username: text(/^[^\s]{1,256}$/, 'a user name without spaces'), token: secret },
  trustedKeys: listOf(trustedKey, 1, 32),
  trustedRoot: rootMetadata,
  tags: listOf(tag, 0, 64),
  modelsDir: absPath,
  socket: absPath,
  socketMode: fileMode,
  keepVersions: int(1, 100),
  download: { parallel: int(1, 16), minFreeBytes: int(0, Number.MAX_SAFE_INTEGER), retries: int(0, 100) },
  telemetry: { intervalSeconds: int(5, 86_400), enabled: bool },
  log: { level: oneOf(LOG_LEVELS) },
  api: {
    maxBodyBytes: int(1024, 2 ** 31 - 1),
    maxConcurrentPerModel: int(1, 256),
    maxBytesInFlight: int(1024 * 1024, Number.MAX_SAFE_INTEGER),
    requestTimeoutMs: int(100, 3_600_000),
    maxConnections: int(1, 65_536),
  },
  mqtt: {
    keepaliveSeconds: int(5, 3_600),
    reconnectMinMs: int(100, 600_000),
    reconnectMaxMs: int(100, 3_600_000),
    maxQueued: int(0, 1_000_000),
  },
  trust: { minRefreshMs: int(0, 3_600_000) },
  onnx: {
    workers: int(0, 16),
    intraOpThreads: int(0, 256),
    interOpThreads: int(1, 256),
    executionMode: oneOf(['sequential', 'parallel'] as const),
    maxQueuedPerModel: int(0, 100_000),
    workerMinMicros: int(0, 60_000_000),
    workerRestarts: int(0, 1_000),
    workerRestartWindowMs: int(1_000, 86_400_000),
  },
};

const REQUIRED = new Set([
  'deviceId',
  'cloud',
  'cloud.http',
  'cloud.mqtt',
  'credentials',
  'credentials.username',
  'credentials.token',
  'trustedKeys',
]);

class IssueError extends Error {
  constructor(
    readonly key: string,
    readonly what: string,
    readonly code: ConfigIssue['code'],
  ) {
    super(what);
  }
}
function issue(key: string, what: string, code: ConfigIssue['code'] = 'CONFIG_INVALID'): IssueError {
  return new IssueError(key, what, code);
}

/** Every known key path, dotted ("download.parallel"); docs and the env mapping use it. */
export function knownConfigKeys(schema: Schema = SCHEMA, prefix = ''): string[] {
  return Object.entries(schema).flatMap(([k, s]) =>
    typeof s === 'function' ? [prefix + k] : knownConfigKeys(s, `${prefix}${k}.`),
  );
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function walk(
  schema: Schema,
  value: Record<string, unknown>,
  defaults: Record<string, unknown> | undefined,
  prefix: string,
  issues: Omit<ConfigIssue, 'source'>[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value)) {
    if (Object.hasOwn(schema, k)) continue;
    const hint = closest(k, Object.keys(schema));
    issues.push({
      code: 'CONFIG_UNKNOWN_KEY',
      key: prefix + k,
      message: `is not a known key${hint ? ` (did you mean "${prefix}${hint}"?)` : ''}`,
    });
  }
  for (const [k, s] of Object.entries(schema)) {
    const key = prefix + k;
    const v = value[k];
    const d = defaults?.[k];
    if (v === undefined) {
      if (REQUIRED.has(key)) {
        issues.push({ code: 'CONFIG_INVALID', key, message: 'is required' });
        continue;
      }
      if (typeof s === 'function') {
        out[k] = structuredClone(d);
        continue;
      }
    }
    if (typeof s === 'function') {
      try {
        out[k] = s(v, key);
      } catch (e) {
        if (!(e instanceof IssueError)) throw e;
        issues.push({ code: e.code, key: e.key, message: e.what });
      }
    } else if (v === undefined || (v !== null && typeof v === 'object' && !Array.isArray(v))) {
      out[k] = walk(
        s,
        (v ?? {}) as Record<string, unknown>,
        d as Record<string, unknown> | undefined,
        key + '.',
        issues,
      );
    } else {
      issues.push({ code: 'CONFIG_INVALID', key, message: `must be an object, got ${show(v)}` });
    }
  }
  return out;
}

/**
 * Validates a config document and fills in defaults. All problems are collected, not only the
 * first: the thrown OutpostError's message lists them ("download.parallel must be an integer
 * 1..16, got 0 (in /etc/outpost/agent.json)") and `details.issues` has them one by one.
 */
export function parseAgentConfig(value: unknown, source: ConfigSource): AgentConfig {
  const where = typeof source === 'function' ? source : () => source;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new OutpostError(
      'CONFIG_INVALID',
      `the agent config must be a JSON object, got ${show(value)} (in ${where('')})`,
      { source: where('') },
    );
  }
  const found: Omit<ConfigIssue, 'source'>[] = [];
  const out = walk(
    SCHEMA,
    value as Record<string, unknown>,
    AGENT_CONFIG_DEFAULTS as unknown as Record<string, unknown>,
    '',
    found,
  );
  const mqtt = out.mqtt as AgentConfig['mqtt'] | undefined;
  if (mqtt && mqtt.reconnectMaxMs < mqtt.reconnectMinMs) {
    found.push({
      code: 'CONFIG_INVALID',
      key: 'mqtt.reconnectMaxMs',
      message: `must be >= mqtt.reconnectMinMs (${mqtt.reconnectMinMs}), got ${mqtt.reconnectMaxMs}`,
    });
  }
  if (found.length > 0) {
    const issues: ConfigIssue[] = found.map((i) => ({ ...i, source: where(i.key) }));
    const lines = issues.map((i) => `${i.key} ${i.message} (in ${i.source})`);
    const message = lines.length === 1 ? lines[0] : `${lines.length} problems in the agent config: ${lines.join('; ')}`;
    throw new OutpostError(issues[0].code, message, { issues });
  }
  return out as unknown as AgentConfig;
}

/** A copy safe to print or log: the token is replaced, everything else is kept. */
export function redactAgentConfig(config: AgentConfig): AgentConfig {
  return { ...config, credentials: { ...config.credentials, token: '[redacted]' } };
}
