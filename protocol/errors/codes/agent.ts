import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the agent daemon: config, systemd, telemetry. */
export const AGENT = {
} as const satisfies ErrorTable;
