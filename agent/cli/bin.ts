#!/usr/bin/env node
// The device package's executable, `outpost-agent` (and ExecStart of outpost-agent.service):
// compiled to dist/agent/cli/bin.js, it runs plain JavaScript and never loads the cloud's code.
import { holdYoungGeneration } from '../system/startup-heap.js';

// Before any other module loads (hence the dynamic import): see startup-heap.ts.
holdYoungGeneration();
const { runAgentCli } = await import('./main.js');

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort(new Error(sig)));
const code = await runAgentCli(process.argv.slice(2), {
  cwd: process.cwd(),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
});
process.exitCode = code;
