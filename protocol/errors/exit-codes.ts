/**
 * Exit codes that scripts can rely on. They group error codes by what a script would do next;
 * the precise reason is always in the error code printed on stderr (or in `--json` output).
 */
export const EXIT = {
  OK: 0,
  /** Something failed that fits no narrower class (a bug, an I/O error). */
  FAILURE: 1,
  /** The command line was wrong: unknown verb, flag or flag value. */
  USAGE: 2,
  /** An input file or document was invalid (model JSON, app JSON, config, labels, colors). */
  INVALID_INPUT: 3,
  /** What was asked for does not exist (model, version, device, file). */
  NOT_FOUND: 4,
  /** No token, a wrong token, or a token that may not do this. */
  AUTH: 5,
  /** The request conflicts with what exists (immutable version, already provisioned). */
  CONFLICT: 6,
  /** The cloud or the agent could not be reached, or the transfer was cut. */
  UNAVAILABLE: 7,
  /** Bytes or metadata failed verification (hash, size, signature, expiry, revision). */
  INTEGRITY: 8,
  /** The device cannot run this model (framework, device type, architecture, backend). */
  INCOMPATIBLE: 9,
} as const;
