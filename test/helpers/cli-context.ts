import { PassThrough } from 'node:stream';
import type { CliContext } from '../../protocol/cli.js';

/** A CliContext whose stdout and stderr are kept as text, for calling a verb's function directly. */
export type CapturedContext = CliContext & { out: () => string; err: () => string };

export function capturedContext(cwd: string, env: NodeJS.ProcessEnv = {}): CapturedContext {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  // Decoded as a stream, so a UTF-8 character split across two writes stays whole.
  stdout.setEncoding('utf8');
  stderr.setEncoding('utf8');
  let o = '';
  let e = '';
  stdout.on('data', (s: string) => {
    o += s;
  });
  stderr.on('data', (s: string) => {
    e += s;
  });
  return { cwd, env, stdout, stderr, signal: new AbortController().signal, out: () => o, err: () => e };
}
