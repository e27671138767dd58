/**
 * The shape of one entry of the error catalog.
 *
 * Every failure that a user, a script or a device report can see carries one stable string code
 * from the catalog. The code never changes once released; the message may be improved. `status`
 * is the HTTP status the cloud or the agent's socket answers with, `exit` the CLI's exit code.
 */
export interface ErrorSpec {
  /** HTTP status for API answers. */
  readonly status: number;
  /** Process exit code for the CLI (see EXIT in exit-codes.ts). */
  readonly exit: number;
  /** What the code means and what the user should do about it (shown in docs/errors.md). */
  readonly hint: string;
  /**
   * True when the same operation, tried again unchanged, can succeed (a network or disk that comes
   * back, a busy peer). The agent's reconcile loop retries these with back-off and gives up on
   * every other code until the desired state changes.
   */
  readonly retryable?: true;
}

export type ErrorTable = Readonly<Record<string, ErrorSpec>>;
