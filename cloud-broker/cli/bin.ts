#!/usr/bin/env node
// The `outpost` executable of the installed package (package.json "bin"): the compiled CLI,
// dist/cloud-broker/cli/bin.js. No transpiler is involved; cloud-broker/cli/outpost.js is the
// development shim that runs the sources through tsx for tests.
import { main } from './main.js';

await main();
