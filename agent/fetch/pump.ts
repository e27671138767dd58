import type { Body } from './http.js';

export interface Sink {
  /** Called synchronously for each chunk as it arrives (hash, bound checks); throw to stop. */
  accept(chunk: Buffer): void;
  /** Persists a chunk; chunks are written one at a time, in order. */
  write(chunk: Buffer): Promise<void>;
  /**
   * Optional: persists every chunk that queued up while the previous write ran, in order, in one
   * call (one writev instead of one write per network chunk). Used instead of `write` when given.
   */
  writev?(chunks: Buffer[]): Promise<void>;
}

/**
 * Moves a response body into `sink`. Why not `for await`: when a connection is cut, the stream
 * is destroyed and chunks still sitting in its buffer are dropped, so bytes that reached the
 * device would be fetched again. Here every chunk is taken as it arrives and queued for writing;
 * on a network error the queue is still written out before the error is returned, so a resume
 * continues from everything that arrived. The queue is bounded by pausing the body at `high`.
 * A `writev` sink gets chunks in batches of at least `batch` bytes (or whatever is left at the
 * end or at a cut): one system call per 256 KiB instead of one per 16-64 KiB network read.
 */
export function pump(body: Body, sink: Sink, high = 1 << 20, batch = 256 * 1024): Promise<void> {
  return new Promise((resolve, reject) => {
    const queue: Buffer[] = [];
    let queued = 0;
    let writing = false;
    let paused = false;
    let ended = false;
    let settled = false;
    // stop: a verdict (too long, disk error) that discards the rest; netError: written out first.
    let stop: unknown = null;
    let netError: unknown = null;

    const settle = (): void => {
      if (settled || writing) return;
      if (stop) {
        settled = true;
        reject(stop);
      } else if (queue.length === 0 && netError) {
        settled = true;
        reject(netError);
      } else if (queue.length === 0 && ended) {
        settled = true;
        resolve();
      }
    };
    const halt = (err: unknown): void => {
      if (!stop) stop = err;
      queue.length = 0;
      settle();
    };
    const drain = async (): Promise<void> => {
      if (writing) return;
      writing = true;
      // Without writev every chunk is written as it comes; with it, small tails wait for company.
      // (A paused body sends nothing more, so never wait for more than `high`.)
      while (queue.length > 0 && !stop && (!sink.writev || queued >= Math.min(batch, high) || ended || netError)) {
        // Everything queued goes in one call when the sink can take it (same bytes, same order).
        const chunks = sink.writev ? queue.splice(0) : [queue.shift()!];
        for (const c of chunks) queued -= c.length;
        try {
          await (sink.writev ? sink.writev(chunks) : sink.write(chunks[0]));
        } catch (err) {
          writing = false;
          return halt(err);
        }
        if (paused && queued < high / 2) {
          paused = false;
          body.resume();
        }
      }
      writing = false;
      settle();
    };

    body.start({
      data(chunk) {
        if (stop) return;
        try {
          sink.accept(chunk);
        } catch (err) {
          return halt(err);
        }
        queue.push(chunk);
        queued += chunk.length;
        if (queued > high && !paused) {
          paused = true;
          body.pause();
        }
        void drain();
      },
      end() {
        ended = true;
        void drain();
        settle();
      },
      error(err) {
        if (!netError) netError = err;
        void drain();
        settle();
      },
    });
  });
}
