import { statfs } from 'node:fs/promises';
import type { TelemetrySample } from '../../protocol/telemetry.js';
import { CpuMeter } from './cpu.js';
import { readHostMemory } from './memory.js';
import type { InferenceStats } from './inference-stats.js';
import { DEFAULT_SENSOR_ROOTS, readTemperatures, type SensorRoots } from './sensors.js';

export interface SamplerOptions {
  deviceId: string;
  /** The models directory: its filesystem's free space is reported. */
  modelsDir: string;
  stats: InferenceStats;
  sensorRoots?: SensorRoots;
}

/**
 * Takes one sample. Every source is asynchronous I/O (sysfs, /proc/meminfo, statfs) or a cheap in-process call, so a sample never holds the
 * event loop for long; a source that fails yields an empty or null field, never a failed sample.
 */
export class Sampler {
  private readonly cpu = new CpuMeter();
  private last = Date.now();
  private readonly started = Date.now() - process.uptime() * 1000;

  constructor(private readonly opts: SamplerOptions) {}

  async sample(): Promise<TelemetrySample> {
    const now = Date.now();
    const [mem, temperatures, disk] = await Promise.all([
      readHostMemory().catch(() => null),
      readTemperatures(this.opts.sensorRoots ?? DEFAULT_SENSOR_ROOTS).catch(() => []),
      statfs(this.opts.modelsDir).then(
        (s) => ({ path: this.opts.modelsDir, totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize }),
        () => null,
      ),
    ]);
    const cpu = this.cpu.read();
    const usage = process.memoryUsage();
    const sample: TelemetrySample = {
      v: 1,
      deviceId: this.opts.deviceId,
      at: new Date(now).toISOString(),
      intervalSeconds: Math.round((now - this.last) / 100) / 10,
      uptimeSeconds: Math.round((now - this.started) / 1000),
      startedAt: new Date(this.started).toISOString(),
      cpu: { loadPercent: cpu.loadPercent, load1: cpu.load1, cores: cpu.cores },
      memory: mem ?? { totalBytes: 0, availableBytes: 0, usedBytes: 0 },
      process: { rssBytes: usage.rss, heapUsedBytes: usage.heapUsed, cpuPercent: cpu.processPercent },
      temperatures,
      disk,
      models: this.opts.stats.drain(),
    };
    this.last = now;
    return sample;
  }
}
