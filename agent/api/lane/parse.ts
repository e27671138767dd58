import { OutpostError } from '../../../protocol/errors/index.js';
import { tooLarge } from '../http.js';

/**
 * The fast lane's HTTP/1.1 request parsing (RFC 9112): the head, and the framing of chunked
 * bodies. Pure functions over bytes, so any split of a request across reads parses the same.
 *
 * Strict on purpose. Requests that are not the lane's hot route are handed, byte for byte, to
 * node:http (agent/api/lane/handoff.ts). If the two parsers framed a request differently, the
 * rest of one request would be read as another (request smuggling). So everything whose framing
 * is ambiguous is refused here, before either parser acts on it: Content-Length together with
 * Transfer-Encoding, two Content-Length headers, a transfer coding other than `chunked`, folded
 * header lines, bare LF line ends, control characters. Each refusal is 400 `API_BAD_HEADER`
 * (431 `API_HEADERS_TOO_LARGE` for a head over its bound), as node:http's parser answers them.
 */
export interface HeadLimits {
  /** Bytes of a request head, the request line and the blank line included. */
  maxHeadBytes: number;
  /** Header lines in one head. */
  maxHeaders: number;
}

export const DEFAULT_HEAD_LIMITS: HeadLimits = Object.freeze({ maxHeadBytes: 16 * 1024, maxHeaders: 200 });

export interface RequestHead {
  method: string;
  /** The request target as sent (origin form: path and query). */
  target: string;
  /** HTTP/1.0 or HTTP/1.1. */
  minor: 0 | 1;
  /** Lower-cased names, values without surrounding blanks, in order. */
  headers: [string, string][];
  /** Bytes from `start` to the end of the blank line (leading empty lines included). */
  length: number;
  /** Declared body length; undefined with chunked framing. 0 when the request has no body. */
  contentLength: number | undefined;
  chunked: boolean;
  keepAlive: boolean;
  /** The Expect header's value, lower-cased, when present (`100-continue` is what curl sends). */
  expect: string | undefined;
}

export type HeadResult =
  | { kind: 'head'; head: RequestHead }
  | { kind: 'incomplete' }
  | { kind: 'error'; error: OutpostError };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) HTTP\/1\.([01])$/;
// Field values: visible characters, blanks and obs-text; no CR, LF, NUL or other controls.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const TRAILER = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*\r$/;
const DIGITS = /^\d{1,15}$/;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

export function badHeader(message: string, details?: Record<string, unknown>): OutpostError {
  return new OutpostError('API_BAD_HEADER', `the request is not valid HTTP/1.1: ${message}`, details);
}

function tooLargeHead(limits: HeadLimits): OutpostError {
  return new OutpostError(
    'API_HEADERS_TOO_LARGE',
    `the request headers are too large (at most ${limits.maxHeadBytes} bytes and ${limits.maxHeaders} header lines)`,
    { maxHeadBytes: limits.maxHeadBytes, maxHeaders: limits.maxHeaders },
  );
}

/**
 * Parses the request head that starts at `start`. `incomplete` means more bytes are needed (and
 * fewer than the bound have arrived); the caller keeps what it has and calls again.
 */
export function parseHead(
  buf: Buffer,
  start: number,
  end: number,
  limits: HeadLimits = DEFAULT_HEAD_LIMITS,
): HeadResult {
  // RFC 9112 2.2: a server should ignore at least one empty line before a request line.
  let at = start;
  while (at + 1 < end && buf[at] === 13 && buf[at + 1] === 10) at += 2;
  if (at < end && buf[at] === 10) return { kind: 'error', error: badHeader('a line ends with LF alone') };
  // Search only the bytes that arrived: the rest of a reused read buffer is stale.
  const stop = (end === buf.length ? buf : buf.subarray(0, end)).indexOf(HEAD_END, at);
  if (stop === -1) {
    if (end - start > limits.maxHeadBytes) return { kind: 'error', error: tooLargeHead(limits) };
    return { kind: 'incomplete' };
  }
  const length = stop + 4 - start;
  if (length > limits.maxHeadBytes) return { kind: 'error', error: tooLargeHead(limits) };
  const lines = buf.toString('latin1', at, stop).split('\r\n');
  const line = REQUEST_LINE.exec(lines[0]!);
  if (!line)
    return {
      kind: 'error',
      error: badHeader(`the request line "${lines[0]!.slice(0, 80)}" is not "METHOD /path HTTP/1.1"`),
    };
  if (lines.length - 1 > limits.maxHeaders) return { kind: 'error', error: tooLargeHead(limits) };
  const headers: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    const colon = l.indexOf(':');
    const name = colon > 0 ? l.slice(0, colon) : '';
    // A name followed by blanks before the colon, or a line starting with a blank (obs-fold), fails here.
    if (!TOKEN.test(name))
      return { kind: 'error', error: badHeader(`the header line "${l.slice(0, 80)}" has no valid field name`) };
    const value = l.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (BAD_VALUE.test(value))
      return { kind: 'error', error: badHeader(`header ${name.slice(0, 80)} has a control character in its value`) };
    headers.push([name.toLowerCase(), value]);
  }
  const framing = frame(headers, line[3] === '1');
  if (framing instanceof OutpostError) return { kind: 'error', error: framing };
  const minor = line[3] === '1' ? 1 : 0;
  return {
    kind: 'head',
    head: { method: line[1]!, target: line[2]!, minor, headers, length, ...framing },
  };
}

function frame(
  headers: [string, string][],
  http11: boolean,
): Pick<RequestHead, 'contentLength' | 'chunked' | 'keepAlive' | 'expect'> | OutpostError {
  let contentLength: number | undefined;
  let te: string | undefined;
  let keepAlive = http11;
  let expect: string | undefined;
  for (const [name, value] of headers) {
    if (name === 'content-length') {
      if (contentLength !== undefined) return badHeader('Content-Length is given twice');
      if (!DIGITS.test(value)) return badHeader(`Content-Length "${value.slice(0, 40)}" is not a byte count`);
      contentLength = Number(value);
    } else if (name === 'transfer-encoding') {
      if (te !== undefined) return badHeader('Transfer-Encoding is given twice');
      te = value.toLowerCase();
    } else if (name === 'connection') {
      for (const token of value.toLowerCase().split(',')) {
        const t = token.trim();
        if (t === 'close') keepAlive = false;
        else if (t === 'keep-alive' && !http11) keepAlive = true;
      }
    } else if (name === 'expect') expect = value.toLowerCase();
  }
  if (te !== undefined) {
    if (contentLength !== undefined) return badHeader('Content-Length and Transfer-Encoding are both given');
    if (!http11) return badHeader('Transfer-Encoding is not defined in HTTP/1.0');
    if (te !== 'chunked')
      return badHeader(`Transfer-Encoding "${te.slice(0, 40)}" is not supported; send chunked or a Content-Length`);
  }
  // A close after the answer is the only way to end an HTTP/1.0 exchange without keep-alive.
  return {
    contentLength: te === undefined ? (contentLength ?? 0) : undefined,
    chunked: te !== undefined,
    keepAlive,
    expect,
  };
}

/**
 * Finds where a chunked body ends, without decoding it: the lane forwards the raw bytes (the
 * framing included) to node:http, which decodes them. Bounded: a size line of at most 1 KiB
 * (extensions included), trailers within the head bound, data within `maxBodyBytes`.
 */
export class ChunkedFramer {
  private state: 'size' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'done' = 'size';
  private line = '';
  private left = 0;
  private total = 0;
  private trailerBytes = 0;

  constructor(
    private readonly maxBodyBytes: number,
    private readonly limits: HeadLimits = DEFAULT_HEAD_LIMITS,
  ) {}

  get done(): boolean {
    return this.state === 'done';
  }

  /** Consumes bytes of the body from `start`; returns how many belong to it (all, until done). */
  feed(buf: Uint8Array, start: number, end: number): number | OutpostError {
    let at = start;
    while (at < end && this.state !== 'done') {
      switch (this.state) {
        case 'data': {
          const n = Math.min(this.left, end - at);
          at += n;
          this.left -= n;
          if (this.left === 0) this.state = 'data-cr';
          break;
        }
        case 'data-cr':
          if (buf[at++] !== 13) return badHeader('a chunk is not followed by CRLF');
          this.state = 'data-lf';
          break;
        case 'data-lf':
          if (buf[at++] !== 10) return badHeader('a chunk is not followed by CRLF');
          this.state = 'size';
          break;
        default: {
          // 'size' or 'trailer': one line up to LF.
          const c = buf[at++]!;
          if (this.state === 'trailer' && ++this.trailerBytes > this.limits.maxHeadBytes)
            return tooLargeHead(this.limits);
          if (c !== 10) {
            if (this.line.length >= 1024) return badHeader('a chunk size line is longer than 1 KiB');
            this.line += String.fromCharCode(c);
            break;
          }
          const err = this.state === 'size' ? this.sizeLine() : this.trailerLine();
          if (err) return err;
        }
      }
    }
    return at - start;
  }

  private sizeLine(): OutpostError | undefined {
    const l = this.line;
    this.line = '';
    if (!l.endsWith('\r')) return badHeader('a chunk size line ends with LF alone');
    const m = /^([0-9A-Fa-f]{1,12})[ \t]*(;[^\r\n]*)?\r$/.exec(l);
    if (!m) return badHeader(`the chunk size line "${l.slice(0, 40)}" is not hexadecimal`);
    const size = Number.parseInt(m[1]!, 16);
    this.total += size;
    if (this.total > this.maxBodyBytes) return tooLarge(this.total, this.maxBodyBytes);
    if (size === 0) this.state = 'trailer';
    else {
      this.left = size;
      this.state = 'data';
    }
    return undefined;
  }

  private trailerLine(): OutpostError | undefined {
    const l = this.line;
    this.line = '';
    if (!l.endsWith('\r')) return badHeader('a trailer line ends with LF alone');
    if (l === '\r') this.state = 'done';
    else if (!TRAILER.test(l) || BAD_VALUE.test(l.slice(0, -1)))
      return badHeader(`the trailer line "${l.slice(0, 40)}" is not a header field`);
    return undefined;
  }
}
