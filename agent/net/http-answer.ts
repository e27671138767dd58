import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { fromErrorBody, type OutpostError } from '../../protocol/errors/index.js';

/**
 * The pieces every HTTP client of Outpost repeats: the agent's client (apps -> agent socket), the
 * cloud's client (CLI -> cloud API) and the blob downloader (agent -> blob store). Each client
 * keeps its own error codes (API_*, CLOUD_*, FETCH_*) and passes them in; what is shared is how
 * an answer is read, bounded and turned into an OutpostError. Node I/O, so not in protocol/; the
 * cloud may import it (the agent never imports cloud-broker/).
 */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Largest answer body a client keeps in memory unless it says otherwise (an annotated image, tensors). */
export const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

/** Gives up a request after `ms` without a byte either way; `error` is what the caller sees. */
export function idleTimeout(req: ClientRequest, ms: number, error: () => Error): void {
  if (ms > 0) req.setTimeout(ms, () => req.destroy(error()));
}

/**
 * Reads a whole answer. A body cut before its end, or longer than `maxBytes` (the connection is
 * then closed at once, so a hostile or broken server cannot fill the memory), rejects with
 * `bad(why)`.
 */
export function collectAnswer(
  res: IncomingMessage,
  bad: (why: string) => OutpostError,
  maxBytes = MAX_ANSWER_BYTES,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        res.destroy();
        reject(bad(`the answer is larger than ${maxBytes} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    res.on('error', (e) => reject(bad(`the answer was cut: ${e.message}`)));
    res.on('aborted', () => reject(bad('the answer was cut')));
  });
}

/** The answer's JSON body, or `bad(first bytes)` when it is not JSON. */
export function jsonOf(a: Answer, bad: (start: string) => OutpostError): unknown {
  try {
    return JSON.parse(a.body.toString('utf8'));
  } catch {
    throw bad(a.body.subarray(0, 80).toString('utf8'));
  }
}

/**
 * The error an answer that is not a success carries: the server's own code and message when its
 * body is an Outpost error body, otherwise INTERNAL with the status (see fromErrorBody). `body` is
 * the parsed JSON (undefined when there was none), for callers that refine the verdict.
 */
export function errorOfAnswer(a: Answer): { error: OutpostError; body: unknown } {
  let body: unknown;
  try {
    body = JSON.parse(a.body.toString('utf8'));
  } catch {
    body = undefined;
  }
  return { error: fromErrorBody(body, a.status), body };
}
