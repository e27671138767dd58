import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the model folder, alwaysai.model.json and alwaysai.app.json (CLI side). */
export const MODEL = {
} as const satisfies ErrorTable;
