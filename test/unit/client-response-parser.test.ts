import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ResponseParser, type ParsedAnswer } from '../../agent/client/response-parser.js';
import { codeOf } from '../helpers/error-code.js';

/**
 * The client's HTTP/1.1 answer parser (agent/client/response-parser.ts): every framing the agent
 * or Node can send, cut at any byte boundaries, parses to the same answer; malformed or
 * oversized answers throw API_BAD_RESPONSE.
 */
function feed(p: ResponseParser, bytes: Buffer, cuts: number[]): ParsedAnswer | undefined {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  let out: ParsedAnswer | undefined;
  for (const c of [...at, bytes.length]) {
    if (c <= from) continue;
    out = p.push(bytes.subarray(from, c)) ?? out;
    from = c;
  }
  return out;
}

const body = Buffer.from('{"model_name":"m"}     0123456789abcdef');
const lengthFramed = Buffer.concat([
  Buffer.from(
    `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: 24\r\nContent-Length: ${body.length}\r\n\r\n`,
  ),
  body,
]);
const chunked = Buffer.from(
  `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: t\r\n\r\n`,
);

describe('ResponseParser', () => {
  it('parses a Content-Length answer cut anywhere, with the tensors 8-byte aligned', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        const p = new ResponseParser(1 << 20);
        const a = feed(p, lengthFramed, cuts);
        expect(a?.status).toBe(200);
        expect(a?.headers['inference-header-content-length']).toBe('24');
        expect(Buffer.compare(a!.body, body)).toBe(0);
        expect((a!.body.byteOffset + 24) % 8).toBe(0);
        expect(p.reusable).toBe(true);
      }),
    );
  });

  it('reads a large Content-Length body in place through window() and wrote(), mixed with push()', () => {
    const big = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7) % 251));
    const bytes = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`), big]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 12 }), (sizes) => {
        const p = new ResponseParser(1 << 20);
        let from = 0;
        let k = 0;
        let a: ParsedAnswer | undefined;
        while (from < bytes.length) {
          const n = Math.min(sizes[k++ % sizes.length]!, bytes.length - from);
          const w = p.window();
          // A window is never longer than the body still due, and only offered once the head is read.
          if (w) {
            expect(w.length).toBe(bytes.length - from);
            const m = Math.min(n, w.length);
            w.set(bytes.subarray(from, from + m));
            a = p.wrote(m) ?? a;
            from += m;
          } else {
            a = p.push(bytes.subarray(from, from + n)) ?? a;
            from += n;
          }
        }
        expect(Buffer.compare(a!.body, big)).toBe(0);
        expect(p.reusable).toBe(true);
      }),
    );
  });

  it('decodes a chunked answer cut anywhere, and joins repeated headers', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        const p = new ResponseParser(1 << 20);
        const a = feed(p, chunked, cuts);
        expect(a?.body.toString()).toBe('hello, world');
        expect(a?.headers['x-a']).toBe('1, 2');
        expect(p.reusable).toBe(true);
      }),
    );
  });

  it('reads an answer without framing to the end of the connection, and never reuses it', () => {
    const p = new ResponseParser(1 << 20);
    expect(p.push(Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nab'))).toBeUndefined();
    expect(p.push(Buffer.from('cd'))).toBeUndefined();
    expect(p.end()?.body.toString()).toBe('abcd');
    expect(p.reusable).toBe(false);
  });

  it('skips an interim 100 Continue, and does not reuse a connection with bytes after the answer', () => {
    const p = new ResponseParser(1 << 20);
    const a = p.push(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1'));
    expect(a?.status).toBe(204);
    expect(a?.body.length).toBe(0);
    expect(p.reusable).toBe(false);
  });

  it('does not reuse a connection the agent says it closes', () => {
    const p = new ResponseParser(1 << 20);
    p.push(Buffer.from('HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}'));
    expect(p.reusable).toBe(false);
  });

  it.each([
    ['a status line that is not HTTP/1.x', 'HTTP/2 200\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nbad\r\n\r\n'],
    ['a folded header line', 'HTTP/1.1 200 OK\r\nA: 1\r\n b\r\n\r\n'],
    ['a Content-Length that is not a count', 'HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n'],
    ['a body larger than the bound', 'HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n'],
    [
      'both Transfer-Encoding and Content-Length',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
    ],
    ['a transfer coding other than chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['a chunk without its CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n'],
    ['chunks larger than the bound', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n'.padEnd(5000, 'x')],
    ['an endless head', `HTTP/1.1 200 OK\r\n${'X-A: 1\r\n'.repeat(9000)}`],
  ])('refuses %s with API_BAD_RESPONSE', (_, text) => {
    expect(codeOf(() => new ResponseParser(1024).push(Buffer.from(text)))).toBe('API_BAD_RESPONSE');
  });
});
