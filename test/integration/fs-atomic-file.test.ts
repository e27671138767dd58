import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileAtomicSync } from '../../agent/fs/atomic-file.js';
import { useTempDir } from '../helpers/temp-dir.js';

// The async and sync writers promise the same things; one suite runs against both.
const writers = {
  async: writeFileAtomic,
  sync: async (...a: Parameters<typeof writeFileAtomicSync>) => writeFileAtomicSync(...a),
};

describe.each(Object.entries(writers))('writeFileAtomic (%s)', (_name, write) => {
  const tmp = useTempDir('outpost-atomic-');
  let oldUmask = 0;
  beforeEach(() => {
    oldUmask = process.umask(0o077);
  });
  afterEach(() => {
    process.umask(oldUmask);
  });

  it('replaces the content and leaves no temp file beside it', async () => {
    const file = join(tmp.dir, 'state.json');
    await writeFile(file, 'old');
    await write(file, 'new content');
    expect(await readFile(file, 'utf8')).toBe('new content');
    expect(await readdir(tmp.dir)).toEqual(['state.json']);
  });

  it('sets an explicit mode exactly, past the umask', async () => {
    const file = join(tmp.dir, 'unit.service');
    await write(file, Buffer.from('x'), { mode: 0o644 });
    expect((await stat(file)).mode & 0o777).toBe(0o644);
  });

  it('without a mode, the umask narrows 0644 as for any new file', async () => {
    const file = join(tmp.dir, 'plain.txt');
    await write(file, 'x');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('a failed rename keeps the old target and removes the temp file', async () => {
    // A non-empty directory at the target makes rename(2) fail after the data was written.
    const target = join(tmp.dir, 'busy');
    await mkdir(join(target, 'inner'), { recursive: true });
    await expect(write(target, 'data')).rejects.toMatchObject({
      code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/),
    });
    expect(await readdir(tmp.dir)).toEqual(['busy']);
    expect(await readdir(target)).toEqual(['inner']);
  });
});
