import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../protocol/log.js';
import type { BufferPool } from './body.js';
import type { SseClients } from './events.js';
import type { MemoryBudget } from './admission.js';
import type { ConcurrencyLimiter } from './limiter.js';
import type { ApiMetrics } from './metrics.js';
import type { ShmRegistry } from './shm.js';
import type { ApiLimits, ServingRuntime } from './types.js';

/** What every route handler receives: the server's shared parts, never module-level state. */
export interface ApiContext {
  runtime: ServingRuntime;
  log: Logger;
  limits: ApiLimits;
  limiter: ConcurrencyLimiter;
  memory: MemoryBudget;
  metrics: ApiMetrics;
  sse: SseClients;
  /** Registered system shared-memory regions (the Triton extension). */
  shm: ShmRegistry;
  /** Reused buffers for tensor bodies and shared-memory reads (agent/api/body.ts). */
  pool: BufferPool;
  version: string;
  startedAt: number;
  isClosing(): boolean;
  status?: () => Promise<Record<string, unknown>> | Record<string, unknown>;
  connections(): number;
}

export interface RouteParams {
  /** Captured `:name` segments, already %-decoded. */
  params: Record<string, string>;
  query: URLSearchParams;
}

export type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  p: RouteParams,
  ctx: ApiContext,
) => Promise<void> | void;

export interface Route {
  /** Metric label: a fixed name, never the raw path. */
  name: string;
  /** Literal segments and `:param` captures. */
  pattern: string[];
  methods: Partial<Record<'GET' | 'POST' | 'HEAD', Handler>>;
}
