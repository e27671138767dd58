import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the agent's local socket API. */
export const API = {
} as const satisfies ErrorTable;
