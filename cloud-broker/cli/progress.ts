import type { CliContext } from '../../protocol/cli.js';

export interface Progress {
  update(done: number): void;
  finish(): void;
}

const NOOP: Progress = { update() {}, finish() {} };

function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}

/**
 * A one-line progress bar on stderr, redrawn at most every 100 ms. Only on a terminal and never
 * with --json, so scripts and logs never see carriage returns.
 */
export function createProgress(ctx: CliContext, json: boolean, label: string, total: number): Progress {
  if (json || !ctx.stderr.isTTY) return NOOP;
  let last = 0;
  let current = 0;
  const draw = (): void => {
    const width = Math.max(10, Math.min(40, (ctx.stderr.columns ?? 80) - label.length - 30));
    const frac = total > 0 ? Math.min(1, current / total) : 1;
    const fill = Math.round(frac * width);
    ctx.stderr.write(
      `\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${mb(current)}/${mb(total)} MB`,
    );
  };
  return {
    update(done) {
      current = done;
      const now = Date.now();
      if (now - last >= 100) {
        last = now;
        draw();
      }
    },
    finish() {
      draw();
      ctx.stderr.write('\n');
    },
  };
}
