export { CATALOG, AREAS, isErrorCode, isRetryable, type ErrorCode } from './catalog.js';
export { EXIT } from './exit-codes.js';
export { OutpostError, toOutpostError, fromErrorBody, exitCodeOf, type ErrorBody } from './outpost-error.js';
export type { ErrorSpec } from './types.js';
