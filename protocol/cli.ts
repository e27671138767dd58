import type { Writable } from 'node:stream';
import { exitCodeOf, toOutpostError } from './errors/index.js';

/**
 * What every `outpost` verb receives. Both CLIs (the cloud/developer one in cloud-broker/cli and
 * the device one in agent/cli) use this shape so that tests can run a verb in-process with
 * captured streams, and so that `--json` and exit codes behave the same everywhere.
 */
export interface CliContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean; columns?: number };
  /** Aborted on SIGINT/SIGTERM; long verbs stop cleanly and leave nothing half-written. */
  signal: AbortSignal;
}

/** One verb: parses its own argv (after the verb words) and returns the exit code. */
export type Command = (argv: string[], ctx: CliContext) => Promise<number>;

/** Prints a result: JSON (one line) with --json, otherwise the human text. */
export function printResult(ctx: CliContext, json: boolean, value: unknown, human: string): void {
  ctx.stdout.write(json ? JSON.stringify(value) + '\n' : human.endsWith('\n') || human === '' ? human : human + '\n');
}

/**
 * Prints an error and returns its exit code. With --json the error goes to stdout as
 * `{"error": {code, message, details}}` so scripts parse one stream; otherwise to stderr as
 * `error CODE: message`.
 */
export function printError(ctx: CliContext, json: boolean, err: unknown): number {
  const e = toOutpostError(err);
  if (json) ctx.stdout.write(JSON.stringify({ error: e.toJSON() }) + '\n');
  else ctx.stderr.write(`error ${e.code}: ${e.message}\n`);
  return exitCodeOf(e);
}
