/**
 * Child process of the store fault tests: opens the store (which runs recover()) and installs one
 * version, then exits. store-kill9 kill -9s it at a random moment; store-disk-full runs it under
 * a file-size limit with an extra file of `bigSize` bytes. Args: dir baseUrl version [bigSize].
 * Prints "ready" when loaded, then "done" or the error as JSON (exit code 3).
 */
import { openStore } from '../../agent/store/index.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { sha256Hex } from '../helpers/blob-server.js';
import { bigFile, publishedFiles } from './store-fixture.js';

const [dir, baseUrl, v, big] = process.argv.slice(2);
const version = Number(v);
// The parent starts its kill timer here, so that kills land in the store's work, not in startup.
process.stdout.write('ready\n');
const files = publishedFiles(version);
if (big) {
  const data = bigFile(Number(big));
  files.push({ path: 'weights.bin', sha256: sha256Hex(data), size: data.length });
}
try {
  const store = await openStore({ dir, keep: 2, marginBytes: 0, backoffMs: 1 });
  await store.installVersion({ id: 'acme/detector', version, files, source: { baseUrl } });
  process.stdout.write('done\n');
} catch (err) {
  const e = err instanceof OutpostError ? err.toJSON() : { code: 'UNEXPECTED', message: String(err) };
  process.stdout.write(JSON.stringify(e) + '\n');
  process.exitCode = 3;
}
