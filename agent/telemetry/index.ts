import type { AgentConfig } from '../../protocol/agent-config.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import type { TelemetrySample } from '../../protocol/telemetry.js';
import { InferenceStats } from './inference-stats.js';
import { Sampler } from './sampler.js';
import type { SensorRoots } from './sensors.js';

export { InferenceStats } from './inference-stats.js';
export { Sampler } from './sampler.js';
export { readTemperatures, readThermalZones, readHwmon, DEFAULT_SENSOR_ROOTS, type SensorRoots } from './sensors.js';

export interface TelemetryOptions {
  deviceId: string;
  modelsDir: string;
  telemetry: AgentConfig['telemetry'];
  log: Logger;
  /** Hands a sample to the sync layer (MQTT telemetry topic). Errors are logged, never thrown. */
  publish: (sample: TelemetrySample) => void | Promise<void>;
  sensorRoots?: SensorRoots;
}

export interface Telemetry {
  /** The runtime calls this after every inference. */
  recordInference(model: string, version: number, ms: number, ok: boolean): void;
  /** Takes and publishes a sample now (a `telemetry` command from the cloud); resolves with it. */
  sampleNow(): Promise<TelemetrySample>;
  /** SIGHUP: applies a new interval / enabled flag from the next tick on. */
  reconfigure(telemetry: AgentConfig['telemetry']): void;
  start(): void;
  stop(): void;
  readonly stats: InferenceStats;
}

/**
 * Periodic telemetry. A setTimeout chain, not setInterval: the next sample is scheduled only
 * after the previous one finished, so samples never pile up behind a slow disk. The timer is
 * unref'd (telemetry never keeps the agent alive) and each sample is plain async I/O, so it
 * interleaves with inferences instead of stalling them (bench/telemetry.ts measures the delay).
 */
export function createTelemetry(opts: TelemetryOptions): Telemetry {
  const log = moduleLogger(opts.log, 'telemetry');
  const stats = new InferenceStats();
  const sampler = new Sampler({
    deviceId: opts.deviceId,
    modelsDir: opts.modelsDir,
    stats,
    sensorRoots: opts.sensorRoots,
  });
  let settings = { ...opts.telemetry };
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  let chain: Promise<unknown> = Promise.resolve();

  const takeAndPublish = async (): Promise<TelemetrySample> => {
    const sample = await sampler.sample();
    try {
      await opts.publish(sample);
    } catch (err) {
      log.warn({ err }, 'telemetry sample not published; the next one carries the running totals');
    }
    return sample;
  };
  // Serialised: an on-request sample and a timer sample never drain the counters concurrently.
  const serial = (): Promise<TelemetrySample> => {
    const p = chain.then(takeAndPublish, takeAndPublish);
    chain = p.catch(() => undefined);
    return p;
  };
  const schedule = (): void => {
    // At most one timer: a reconfigure during a sample must not leave a second chain behind.
    if (!running || !settings.enabled || timer) return;
    timer = setTimeout(() => {
      timer = null;
      serial()
        .catch((err) => log.error({ err }, 'telemetry sample failed'))
        .finally(schedule);
    }, settings.intervalSeconds * 1000);
    timer.unref();
  };

  return {
    stats,
    recordInference: (model, version, ms, ok) => stats.recordInference(model, version, ms, ok),
    sampleNow: serial,
    reconfigure(next) {
      const changed = next.intervalSeconds !== settings.intervalSeconds || next.enabled !== settings.enabled;
      settings = { ...next };
      if (changed && running) {
        if (timer) clearTimeout(timer);
        timer = null;
        schedule();
        log.info({ intervalSeconds: settings.intervalSeconds, enabled: settings.enabled }, 'telemetry reconfigured');
      }
    },
    start() {
      if (running) return;
      running = true;
      schedule();
    },
    stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
