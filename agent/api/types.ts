import type { Logger } from '../../protocol/log.js';
import type { Framework, Purpose } from '../../protocol/manifest-types.js';
import type { BatchStats, Tensor, TensorInfo } from '../runtime/backend.js';
import type { Serving } from '../runtime/model-version.js';
import type { RawFrame } from '../runtime/preprocess.js';
import type { ShmLimits } from './shm.js';

/**
 * The narrow view of the runtime that the socket API needs. The daemon passes an adapter over
 * the real Runtime (see runtime-adapter.ts); the API never reaches into the runtime further than
 * this, so the two can change independently.
 */

/**
 * Whether a model serves. The daemon opens the socket only after every installed model was loaded
 * (or failed to), so there is no "loading" state to report; an unloaded model is simply absent.
 */
/** `unhealthy`: loaded, but its backend can no longer run it (error says why and what to do). */
export type ServingState = 'ready' | 'failed' | 'unhealthy';

export interface ModelEntry {
  /** owner/name */
  id: string;
  /** The version new requests go to; null while nothing is active. */
  activeVersion: number | null;
  /** Versions that are loaded and can serve `/versions/{v}` requests. */
  loadedVersions: number[];
  state: ServingState;
  error?: { code: string; message: string };
  /**
   * `raw-tensors` when the active version serves KServe inference only (its input is not one
   * image or its outputs cannot be post-processed); `notice` then says why and what to set.
   */
  serving?: 'results' | 'raw-tensors';
  notice?: { code: string; message: string };
}

/** What the API needs of one loaded version (the runtime's ServedModel, narrowed). */
export interface ModelDescription {
  id: string;
  version: number;
  purpose: Purpose;
  /** The model JSON's framework_type, when the runtime reports it. */
  framework?: Framework;
  backend: string;
  inputs: readonly TensorInfo[];
  outputs: readonly TensorInfo[];
  /** The layouts /predict uses and how each was chosen, or why it serves raw tensors only. */
  serving?: Serving;
  /** Present when the version batches waiting requests (dynamic_batching): runs per batch size. */
  batches?: BatchStats;
}

export interface PredictOptions {
  /** Minimum confidence for detections and classifications (runtime default when absent). */
  confidence?: number;
  /** Keep at most this many classification results. */
  topK?: number;
}

/** A post-processed result, shaped like edgeIQ's results objects (see docs/runtime.md). */
export interface PredictResult {
  purpose?: Purpose;
  /** Seconds of inference. */
  duration?: number;
  predictions?: unknown[];
  [k: string]: unknown;
}

/** One row of the KServe repository index (POST /v2/repository/index). */
export interface RepositoryEntry {
  name: string;
  version: string;
  state: 'READY' | 'UNAVAILABLE' | 'LOADING';
  reason: string;
}

export interface ServingRuntime {
  /** Every model, sorted by id; the same array until something changes (do not modify it). */
  list(): readonly ModelEntry[];
  /**
   * The model a route's `{name}` names: `owner/name`, or the name part alone when one model has
   * it (API_MODEL_NOT_FOUND, API_MODEL_AMBIGUOUS otherwise; agent/api/names.ts).
   */
  lookup(name: string): ModelEntry;
  /**
   * Loads a kept (non-active) version on demand so that `/versions/{v}` routes can serve it; the
   * runtime unloads it when idle. Absent when the runtime serves the active version only.
   */
  ensureVersion?(id: string, version: number): Promise<void>;
  /** The model repository extension: every installed model and kept version, and load/unload. */
  repositoryIndex?(): Promise<RepositoryEntry[]>;
  loadModel?(id: string): Promise<void>;
  unloadModel?(id: string): Promise<void>;
  /** The loaded model for `version` (the active one when absent), or undefined. */
  describe(id: string, version?: number): ModelDescription | undefined;
  /**
   * Runs tensors through `version` (the active one when absent). The runtime holds a reference
   * on that version for the whole call, so a switch never fails a request in flight.
   */
  infer(
    id: string,
    version: number | undefined,
    inputs: Record<string, Tensor>,
  ): Promise<{ version: number; outputs: Record<string, Tensor> }>;
  /** Pre-processing, inference and post-processing of one JPEG/PNG image or raw frame. */
  predict(
    id: string,
    version: number | undefined,
    image: Uint8Array | RawFrame,
    opts: PredictOptions,
  ): Promise<{ version: number; result: PredictResult }>;
}

/** A model change, as streamed on /v1/events and counted in /metrics. */
export type AgentEventType = 'installed' | 'activated' | 'failed' | 'rolled-back';
export interface AgentEvent {
  type: AgentEventType;
  model: string;
  version?: number;
  /** ISO time; set by the hub when absent. */
  at?: string;
  code?: string;
  message?: string;
}

export interface EventSource {
  /** Returns the function that unsubscribes. */
  subscribe(listener: (e: AgentEvent) => void): () => void;
}

export interface ApiLimits {
  /** Largest request body (bytes); larger ones get 413 API_BODY_TOO_LARGE. */
  maxBodyBytes: number;
  /** Requests one model runs at once; more get 503 API_SATURATED with Retry-After. */
  maxConcurrentPerModel: number;
  /** Decoded image and tensor bytes of all requests in flight (agent/api/admission.ts). */
  maxBytesInFlight: number;
  /** Time to receive a whole request (headers and body); slower ones get 408. */
  requestTimeoutMs: number;
  /**
   * Open connections on the socket; one more is answered 503 API_TOO_MANY_CONNECTIONS and
   * closed. Each open connection holds a read buffer (64 KiB in the fast lane), so this bounds
   * what idle or leaked client connections cost.
   */
  maxConnections: number;
  /** Time to receive the headers alone (at most requestTimeoutMs). */
  headersTimeoutMs: number;
  /** How often Node checks those two timeouts. */
  timeoutCheckMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** SSE heartbeat comment period. */
  heartbeatMs: number;
  /** An SSE client that leaves this many bytes unread is dropped. */
  sseMaxBufferedBytes: number;
}

export const DEFAULT_LIMITS: ApiLimits = Object.freeze({
  maxBodyBytes: 64 * 1024 * 1024,
  maxConcurrentPerModel: 4,
  maxBytesInFlight: 512 * 1024 * 1024,
  requestTimeoutMs: 30_000,
  maxConnections: 256,
  headersTimeoutMs: 10_000,
  timeoutCheckMs: 1_000,
  keepAliveTimeoutMs: 5_000,
  heartbeatMs: 15_000,
  sseMaxBufferedBytes: 1024 * 1024,
});

export interface ApiServerOptions {
  runtime: ServingRuntime;
  log: Logger;
  events?: EventSource;
  limits?: Partial<ApiLimits>;
  /** Extra fields merged into /v1/status (device id, sync state, capabilities...). */
  status?: () => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Reported by GET /v2 and /v1/status. */
  version?: string;
  /** Bounds on registered shared-memory regions (agent/api/shm.ts). */
  shm?: ShmLimits;
  /**
   * Serve the socket through the fast lane (agent/api/lane/, the default) or with node:http
   * alone, as before it: for A/B measurements (bench/socket-vs-inprocess.ts).
   */
  lane?: boolean;
}
