import { toOutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { probeCapabilities } from '../system/probe.js';

/**
 * What the daemon needs to know about the host: the Jetson device type (for the TensorRT compatibility check) and
 * the probe's summary, reported in the device's capabilities (`capabilities.host`). A probe that
 * fails reports nothing rather than stopping the agent: it only reads files that may not exist.
 */
export interface HostInfo {
  deviceType: string | null;
  summary: Record<string, unknown>;
}

export async function probeHost(log: Logger, root?: string): Promise<HostInfo> {
  try {
    // OpenCV's build is reported once a model has loaded its addon (the daemon probes again then).
    const caps = await probeCapabilities({ root, loadOpenCv: false });
    return { deviceType: caps.jetson?.device ?? null, summary: { ...caps } };
  } catch (err) {
    moduleLogger(log, 'probe').warn(
      { err: toOutpostError(err).toJSON() },
      'host probe failed; reporting no host details',
    );
    return { deviceType: null, summary: {} };
  }
}
