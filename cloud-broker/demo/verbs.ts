import { PassThrough } from 'node:stream';
import type { CliContext } from '../../protocol/cli.js';
import { OutpostError, fromErrorBody } from '../../protocol/errors/index.js';

/**
 * Runs real `outpost` verbs from inside the demo, in this process, with captured output: the
 * same code a user's command line reaches (parsing, cloud discovery, HTTP client), minus a
 * process start per step. Every verb runs with --json so its answer is read, not scraped.
 */
export type VerbRunner = <T = Record<string, unknown>>(argv: string[], opts?: { cwd?: string }) => Promise<T>;

export interface VerbRunnerOptions {
  cwd: string;
  /** The environment the verbs see (the demo strips the user's OUTPOST_* and points at its cloud). */
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
}

export function verbRunner(opts: VerbRunnerOptions): VerbRunner {
  return async <T>(argv: string[], o: { cwd?: string } = {}): Promise<T> => {
    // Imported here: main.ts lazily imports this module's caller, and the cycle must not run at load.
    const { runCli } = await import('../cli/main.js');
    const out = new PassThrough();
    const err = new PassThrough();
    const chunks: Buffer[] = [];
    const errChunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    err.on('data', (c: Buffer) => errChunks.push(c));
    const ctx: CliContext = { cwd: o.cwd ?? opts.cwd, env: opts.env, stdout: out, stderr: err, signal: opts.signal };
    const code = await runCli([...argv, '--json'], ctx);
    const text = Buffer.concat(chunks).toString('utf8').trim();
    const last = text.split('\n').pop() ?? '';
    let parsed: unknown;
    try {
      parsed = JSON.parse(last);
    } catch {
      parsed = undefined;
    }
    const verb = `outpost ${argv
      .filter((a) => !a.startsWith('-'))
      .slice(0, 2)
      .join(' ')}`;
    if (code !== 0) {
      // Keep the verb's own code (and so its exit code); say which step of the demo it was.
      const inner =
        parsed && typeof parsed === 'object' && 'error' in parsed
          ? fromErrorBody((parsed as { error: unknown }).error)
          : undefined;
      if (inner) throw new OutpostError(inner.code, `${verb} failed: ${inner.message}`, { ...inner.details, verb });
      throw new OutpostError(
        'INTERNAL',
        `${verb} exited ${code}: ${text || Buffer.concat(errChunks).toString('utf8')}`,
        { verb, exit: code },
      );
    }
    if (parsed === undefined)
      throw new OutpostError('INTERNAL', `${verb} printed no JSON answer: ${text.slice(0, 200)}`, { verb });
    return parsed as T;
  };
}
