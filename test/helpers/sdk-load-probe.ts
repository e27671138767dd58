// Run as `node --import tsx test/helpers/sdk-load-probe.ts <outpost args...>`: runs the CLI in
// this process (for `cloud start`, until it listens, then stops it) and prints on its last
// stderr line how many modules of the AWS SDK were loaded. The SDK is CommonJS, so each of its
// files is in the require cache once anything imported it, from ESM too.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { runCli } from '../../cloud-broker/cli/main.js';

const argv = process.argv.slice(2);
const ac = new AbortController();
const dataDir = argv[argv.indexOf('--data-dir') + 1];
if (argv[0] === 'cloud' && dataDir) {
  const timer = setInterval(() => {
    if (existsSync(join(dataDir, 'cloud.json'))) {
      clearInterval(timer);
      ac.abort();
    }
  }, 20);
}
const code = await runCli(argv, {
  cwd: process.cwd(),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: ac.signal,
});
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/@aws-sdk/')).length;
process.stderr.write(`\nexit ${code} aws-sdk-modules ${loaded}\n`);
process.exit(code);
