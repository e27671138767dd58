import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the cloud catalog, blob store, tokens and HTTP API. */
export const CATALOG = {
} as const satisfies ErrorTable;
