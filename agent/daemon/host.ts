import type { Logger } from '../../protocol/log.js';

/**
 * What the daemon needs to know about the host: the Jetson device type (for the TensorRT gate) and
 * a summary reported in the device's capabilities.
 */
export interface HostInfo {
  deviceType: string | null;
  summary: Record<string, unknown>;
}

export async function probeHost(log: Logger): Promise<HostInfo> {
  void log;
  return { deviceType: null, summary: {} };
}
