import { cpus, loadavg } from 'node:os';

/**
 * CPU load over an interval, from the kernel counters os.cpus() returns (libuv reads
 * /proc/stat in-process). systeminformation's currentLoad() computes the same but also runs
 * `cat /proc/stat | grep cpu` through execSync on Linux, which blocks the event loop for a
 * process spawn on every sample; bench/telemetry.ts measures both.
 */
export class CpuMeter {
  private lastBusy = 0;
  private lastTotal = 0;
  private lastProc = process.cpuUsage();
  private lastAt = process.hrtime.bigint();

  constructor() {
    this.sampleSystem();
  }

  private sampleSystem(): { busy: number; total: number; cores: number } {
    const list = cpus();
    let busy = 0;
    let total = 0;
    for (const c of list) {
      const t = c.times;
      busy += t.user + t.nice + t.sys + t.irq;
      total += t.user + t.nice + t.sys + t.irq + t.idle;
    }
    return { busy, total, cores: list.length };
  }

  /** Busy share of all cores and of this process since the previous call (or construction). */
  read(): { loadPercent: number; load1: number; cores: number; processPercent: number } {
    const { busy, total, cores } = this.sampleSystem();
    const dBusy = busy - this.lastBusy;
    const dTotal = total - this.lastTotal;
    this.lastBusy = busy;
    this.lastTotal = total;
    const now = process.hrtime.bigint();
    const proc = process.cpuUsage();
    const wallUs = Number(now - this.lastAt) / 1000;
    const procUs = proc.user - this.lastProc.user + proc.system - this.lastProc.system;
    this.lastAt = now;
    this.lastProc = proc;
    const pct = (x: number): number => Math.round(Math.min(100, Math.max(0, x)) * 10) / 10;
    return {
      loadPercent: dTotal > 0 ? pct((100 * dBusy) / dTotal) : 0,
      load1: Math.round(loadavg()[0] * 100) / 100,
      cores: Math.max(1, cores),
      // Share of the whole machine (all cores), comparable with loadPercent.
      processPercent: wallUs > 0 ? pct((100 * procUs) / wallUs / Math.max(1, cores)) : 0,
    };
  }
}
