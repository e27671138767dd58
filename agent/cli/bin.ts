#!/usr/bin/env node
// The device package's executable, `outpost-agent` (and ExecStart of outpost-agent.service):
// compiled to dist/agent/cli/bin.js, it runs plain JavaScript and never loads the cloud's code.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enableCompileCache } from '../system/compile-cache.js';
import { holdYoungGeneration } from '../system/startup-heap.js';

// Before any other module loads (hence the dynamic import): see startup-heap.ts and
// compile-cache.ts (in the device bundle, the files beside this one are compiled from V8's
// code cache; elsewhere nothing under this folder is CommonJS and the hook never applies).
// No top-level await: the bundle is CommonJS (agent/bundle.mjs).
holdYoungGeneration();
enableCompileCache(dirname(fileURLToPath(import.meta.url)));

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort(new Error(sig)));
void import('./main.js')
  .then(({ runAgentCli }) =>
    runAgentCli(process.argv.slice(2), {
      cwd: process.cwd(),
      env: process.env,
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
    }),
  )
  .then((code) => {
    process.exitCode = code;
  });
