import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedFramer, DEFAULT_HEAD_LIMITS, parseHead } from '../../agent/api/lane/parse.js';

/**
 * The fast lane's request parsing (agent/api/lane/parse.ts): a head is `incomplete` until its
 * last byte and then parses the same wherever the bytes were cut; a chunked body's end is found
 * exactly, whatever follows it; every ambiguous framing is refused with its code.
 */
const HEAD =
  'POST /v2/models/acme%2Fclassifier/infer?x=1 HTTP/1.1\r\nHost: agent\r\nContent-Type: application/octet-stream\r\n' +
  'Inference-Header-Content-Length: 48\r\nContent-Length: 1024\r\nExpect: 100-continue\r\nX-Tab:\t a value \t\r\n\r\n';

function codeOf(bytes: string): string | undefined {
  const r = parseHead(Buffer.from(bytes, 'latin1'), 0, Buffer.byteLength(bytes, 'latin1'));
  return r.kind === 'error' ? r.error.code : r.kind;
}

describe('parseHead', () => {
  it('is incomplete for every prefix of a head and parses it whole, wherever it sits in the buffer', () => {
    fc.assert(
      fc.property(fc.nat({ max: 64 }), fc.nat({ max: 64 }), (before, after) => {
        const buf = Buffer.concat([Buffer.alloc(before, 0x41), Buffer.from(HEAD, 'latin1'), Buffer.alloc(after, 0x42)]);
        for (let end = before; end < before + HEAD.length; end++)
          expect(parseHead(buf, before, end).kind).toBe('incomplete');
        const r = parseHead(buf, before, buf.length);
        if (r.kind !== 'head') throw new Error(`expected a head, got ${r.kind}`);
        expect(r.head).toEqual({
          method: 'POST',
          target: '/v2/models/acme%2Fclassifier/infer?x=1',
          minor: 1,
          headers: [
            ['host', 'agent'],
            ['content-type', 'application/octet-stream'],
            ['inference-header-content-length', '48'],
            ['content-length', '1024'],
            ['expect', '100-continue'],
            ['x-tab', 'a value'],
          ],
          length: HEAD.length,
          contentLength: 1024,
          chunked: false,
          keepAlive: true,
          expect: '100-continue',
        });
      }),
    );
  });

  it('reads keep-alive as HTTP/1.0 and 1.1 define it, skips empty lines before the request line', () => {
    const head = (s: string) => {
      const r = parseHead(Buffer.from(s), 0, s.length);
      if (r.kind !== 'head') throw new Error(`expected a head for ${JSON.stringify(s)}`);
      return r.head;
    };
    expect(head('GET / HTTP/1.0\r\n\r\n')).toMatchObject({ minor: 0, keepAlive: false, contentLength: 0 });
    expect(head('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n').keepAlive).toBe(true);
    expect(head('GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n').keepAlive).toBe(false);
    expect(head('\r\n\r\nGET /v2 HTTP/1.1\r\n\r\n')).toMatchObject({ target: '/v2', length: 24 });
    expect(head('POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n')).toMatchObject({
      chunked: true,
      contentLength: undefined,
    });
  });

  it.each([
    ['garbage request line', 'GARBAGE\r\n\r\n', 'API_BAD_HEADER'],
    ['an HTTP/2 request line', 'GET / HTTP/2.0\r\n\r\n', 'API_BAD_HEADER'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\n\r\n', 'API_BAD_HEADER'],
    ['a header name with a space', 'GET / HTTP/1.1\r\nBad Header: x\r\n\r\n', 'API_BAD_HEADER'],
    ['a blank before the colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n', 'API_BAD_HEADER'],
    ['a folded header line', 'GET / HTTP/1.1\r\nX-A: 1\r\n  2\r\n\r\n', 'API_BAD_HEADER'],
    ['a bare LF inside the head', 'GET / HTTP/1.1\r\nX-A: 1\nX-B: 2\r\n\r\n', 'API_BAD_HEADER'],
    ['a NUL in a value', 'GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n', 'API_BAD_HEADER'],
    ['Content-Length not a number', 'POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n', 'API_BAD_HEADER'],
    ['a negative Content-Length', 'POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 'API_BAD_HEADER'],
    ['two Content-Lengths', 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n', 'API_BAD_HEADER'],
    [
      'Content-Length and Transfer-Encoding',
      'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
      'API_BAD_HEADER',
    ],
    ['a coding other than chunked', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'API_BAD_HEADER'],
    ['chunked in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 'API_BAD_HEADER'],
    ['a head over 16 KiB', `GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 'API_HEADERS_TOO_LARGE'],
    ['an unfinished head over 16 KiB', `GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}`, 'API_HEADERS_TOO_LARGE'],
    [
      'more header lines than the bound',
      `GET / HTTP/1.1\r\n${'X-A: 1\r\n'.repeat(DEFAULT_HEAD_LIMITS.maxHeaders + 1)}\r\n`,
      'API_HEADERS_TOO_LARGE',
    ],
  ])('refuses %s', (_what, bytes, code) => {
    expect(codeOf(bytes)).toBe(code);
  });

  it('never throws on arbitrary bytes: a head, incomplete, or a coded refusal', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const buf = Buffer.concat([Buffer.from(bytes), Buffer.from('\r\n\r\n')]);
        const r = parseHead(buf, 0, buf.length);
        if (r.kind === 'error') expect(['API_BAD_HEADER', 'API_HEADERS_TOO_LARGE']).toContain(r.error.code);
      }),
    );
  });
});

const CHUNKED = '5;ext="1"\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: t\r\n\r\n';

describe('ChunkedFramer', () => {
  it('finds the exact end of a chunked body fed in any pieces, and nothing of what follows', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), (cuts) => {
        const buf = Buffer.from(`${CHUNKED}GET /next HTTP/1.1\r\n\r\n`);
        const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
        const f = new ChunkedFramer(1024);
        let from = 0;
        for (const c of [...at, buf.length]) {
          if (c <= from || f.done) continue;
          const used = f.feed(buf, from, c);
          if (typeof used !== 'number') throw used;
          from += used;
        }
        expect(f.done).toBe(true);
        expect(from).toBe(CHUNKED.length);
      }),
    );
  });

  it.each([
    ['a size that is not hexadecimal', 'zz\r\n', 'API_BAD_HEADER'],
    ['a size line ending in LF alone', '5\nhello\r\n', 'API_BAD_HEADER'],
    ['data not followed by CRLF', '5\r\nhelloXX', 'API_BAD_HEADER'],
    ['a size line over 1 KiB', `5;${'e'.repeat(2000)}\r\n`, 'API_BAD_HEADER'],
    ['a body over the limit', '401\r\n', 'API_BODY_TOO_LARGE'],
    ['a trailer that is not a field', '0\r\nnot a field\r\n\r\n', 'API_BAD_HEADER'],
  ])('refuses %s', (_what, bytes, code) => {
    const r = new ChunkedFramer(1024).feed(Buffer.from(bytes), 0, bytes.length);
    expect(typeof r === 'number' ? 'accepted' : r.code).toBe(code);
  });
});
