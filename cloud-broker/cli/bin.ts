#!/usr/bin/env node
// The `outpost` executable (package.json "bin"): compiled by `npm run build` to
// dist/cloud-broker/cli/bin.js and run by plain node, with no loader and no transpiler.
import { main } from './main.js';

await main();
