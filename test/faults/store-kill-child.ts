/**
 * Child process of store-kill9.test.ts: opens the store (which runs recover()) and installs one
 * version, then exits. The parent kill -9s it at a random moment. Args: dir baseUrl version.
 */
import { openStore } from '../../agent/store/index.js';
import { publishedFiles } from './store-fixture.js';

const [dir, baseUrl, v] = process.argv.slice(2);
const version = Number(v);
// The parent starts its kill timer here, so that kills land in the store's work, not in startup.
process.stdout.write('ready\n');
const store = await openStore({ dir, keep: 2, marginBytes: 0, backoffMs: 1 });
await store.installVersion({ id: 'acme/detector', version, files: publishedFiles(version), source: { baseUrl } });
process.stdout.write('done\n');
