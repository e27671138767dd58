import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of devices, deployments, signing, the broker and the desired-state protocol. */
export const FLEET = {
} as const satisfies ErrorTable;
