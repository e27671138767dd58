#!/usr/bin/env node
// Development shim: runs the TypeScript sources through tsx (a devDependency), so tests and
// `npm run outpost` see edits without a build. The installed `outpost` is the compiled
// dist/cloud-broker/cli/bin.js (package.json "bin"); this file is not in any package.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
await main();
