import type { Readable } from 'node:stream';

/** One Server-Sent Events message (comments and `retry:` lines are skipped). */
export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

/**
 * Parses an SSE byte stream per the WHATWG rules the agent uses: lines end in \n (a \r before it
 * is dropped), a blank line ends a message, `data:` lines join with \n, `:` starts a comment.
 */
export async function* parseSse(stream: Readable): AsyncGenerator<SseMessage> {
  let buf = '';
  let cur: SseMessage = { data: '' };
  let hasData = false;
  for await (const chunk of stream) {
    buf += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (hasData || cur.event) yield cur;
        cur = { data: '' };
        hasData = false;
        continue;
      }
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i === -1 ? line : line.slice(0, i);
      const value = i === -1 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'data') {
        cur.data = hasData ? `${cur.data}\n${value}` : value;
        hasData = true;
      } else if (field === 'event') cur.event = value;
      else if (field === 'id') cur.id = value;
    }
  }
}
