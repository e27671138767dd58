import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, moduleLogger } from '../../protocol/log.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, destination };
}

describe('logger', () => {
  it('binds module once and nested modules as component, so no line repeats a key', () => {
    const { lines, destination } = capture();
    const root = createLogger({ level: 'info', destination });
    moduleLogger(moduleLogger(root, 'runtime'), 'runtime.model', { model: 'a/b' }).info('loaded');
    const line = lines[0];
    expect(line.match(/"module"/g)).toHaveLength(1);
    expect(JSON.parse(line)).toMatchObject({
      module: 'runtime',
      component: 'runtime.model',
      model: 'a/b',
      msg: 'loaded',
    });
  });

  it('redacts secrets wherever they appear', () => {
    const { lines, destination } = capture();
    const root = createLogger({ level: 'info', destination });
    root.info({ token: 'abc', credentials: { token: 'def' }, req: { headers: { authorization: 'Bearer x' } } }, 'hi');
    expect(lines[0]).not.toMatch(/abc|def|Bearer x/);
    expect(lines[0]).toContain('[redacted]');
  });
});
