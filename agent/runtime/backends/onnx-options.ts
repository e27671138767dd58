import { availableParallelism } from 'node:os';
import type * as Ort from 'onnxruntime-node';
import { AGENT_CONFIG_DEFAULTS, type AgentConfig } from '../../../protocol/agent-config.js';

/**
 * How the ONNX backend runs sessions: the `onnx` section of agent.json (protocol/agent-config.ts
 * validates it) turned into onnxruntime session options. docs/performance.md has the
 * measurements behind each default.
 */
export type OnnxSettings = AgentConfig['onnx'];

export const ONNX_DEFAULTS: Readonly<OnnxSettings> = AGENT_CONFIG_DEFAULTS.onnx;

/**
 * Intra-op threads when the config says 0: every core but the one the event loop needs for the
 * requests themselves, and at least one. onnxruntime's own default (one per physical core) puts
 * a thread on the core the event loop runs on, and the two then take turns instead of overlapping.
 */
export function autoIntraOpThreads(settings: Pick<OnnxSettings, 'workers'>, cores = availableParallelism()): number {
  return settings.workers > 0 ? Math.max(1, cores - 1) : Math.max(1, cores);
}

/**
 * The session options for `settings`. Thread-pool spinning is off: by default onnxruntime's
 * worker threads busy-wait after each run for the next one, which on a device where the agent
 * shares a few cores with the apps that call it takes those cores from the apps (and from the
 * agent's own event loop). Measured here: the conv net of bench/_convnet.ts burned 37 ms of CPU
 * per idle 300 ms with spinning, 0.5 without, and ran faster without it once another process
 * competed for the cores.
 */
export function sessionOptionsFor(
  settings: Partial<OnnxSettings> = {},
  cores = availableParallelism(),
): Ort.InferenceSession.SessionOptions {
  const s = { ...ONNX_DEFAULTS, ...settings };
  return {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: s.intraOpThreads > 0 ? s.intraOpThreads : autoIntraOpThreads(s, cores),
    interOpNumThreads: s.interOpThreads,
    executionMode: s.executionMode,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}
