import { CATALOG, isErrorCode, type ErrorCode } from './catalog.js';
import { EXIT } from './exit-codes.js';

/**
 * The error every Outpost module throws for a failure a user can see. `message` says what went
 * wrong and what to do; `details` carries machine-readable context (the key, the bad value, the
 * path) and must never contain secrets.
 */
export class OutpostError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OutpostError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return CATALOG[this.code].status;
  }

  get exitCode(): number {
    return CATALOG[this.code].exit;
  }

  /** The wire form used by the HTTP APIs, the CLI's --json output and device reports. */
  toJSON(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** Turns anything thrown into an OutpostError; unknown failures become INTERNAL. */
export function toOutpostError(err: unknown): OutpostError {
  if (err instanceof OutpostError) return err;
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e && isErrorCode(e.code) && typeof e.message === 'string') return new OutpostError(e.code, e.message);
  const message = e && typeof e.message === 'string' ? e.message : String(err);
  return new OutpostError('INTERNAL', message, undefined, { cause: err });
}

/** Parses an error body received over HTTP or MQTT back into an OutpostError. */
export function fromErrorBody(body: unknown, fallbackStatus?: number): OutpostError {
  const b = body as Partial<ErrorBody> | null;
  if (b && isErrorCode(b.code) && typeof b.message === 'string') return new OutpostError(b.code, b.message, b.details);
  return new OutpostError('INTERNAL', `unexpected error answer${fallbackStatus ? ` (HTTP ${fallbackStatus})` : ''}`);
}

export function exitCodeOf(err: unknown): number {
  return err instanceof OutpostError ? err.exitCode : EXIT.FAILURE;
}
