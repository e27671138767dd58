import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';

export interface TempDir {
  /** The current folder; read it inside hooks and tests only (it is set by a before hook). */
  readonly dir: string;
}

/**
 * A fresh folder under the OS temp dir, made before and removed (recursively) after each test
 * (`'each'`) or the whole file/describe block (`'all'`). Call it at the top of a file or describe:
 * its hooks are registered there, before the caller's own, so the folder exists when they run.
 */
export function useTempDir(prefix: string, scope: 'each' | 'all' = 'each'): TempDir {
  let current: string | undefined;
  const state: TempDir = {
    get dir(): string {
      if (current === undefined) throw new Error(`useTempDir(${prefix}): read .dir inside a hook or test`);
      return current;
    },
  };
  const make = async (): Promise<void> => {
    current = await mkdtemp(join(tmpdir(), prefix));
  };
  const remove = async (): Promise<void> => {
    if (current !== undefined) await rm(current, { recursive: true, force: true });
    current = undefined;
  };
  if (scope === 'each') {
    beforeEach(make);
    afterEach(remove);
  } else {
    beforeAll(make);
    afterAll(remove);
  }
  return state;
}
