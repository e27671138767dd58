import type { Body } from './http.js';

export interface Sink {
  /** Called synchronously for each chunk as it arrives (hash, bound checks); throw to stop. */
  accept(chunk: Buffer): void;
  /** Persists a chunk; chunks are written one at a time, in order. */
  write(chunk: Buffer): Promise<void>;
}

/**
 * Moves a response body into `sink`. Why not `for await`: when a connection is cut, the stream
 * is destroyed and chunks still sitting in its buffer are dropped, so bytes that reached the
 * device would be fetched again. Here every chunk is taken as it arrives and queued for writing;
 * on a network error the queue is still written out before the error is returned, so a resume
 * continues from everything that arrived. The queue is bounded by pausing the body at `high`.
 */
export function pump(body: Body, sink: Sink, high = 1 << 20): Promise<void> {
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
      while (queue.length > 0 && !stop) {
        const chunk = queue.shift()!;
        queued -= chunk.length;
        try {
          await sink.write(chunk);
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
        settle();
      },
      error(err) {
        if (!netError) netError = err;
        settle();
      },
    });
  });
}
