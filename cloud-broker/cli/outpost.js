#!/usr/bin/env node
// The `outpost` executable (package.json "bin"). Node 20 cannot run TypeScript by itself, so this
// registers tsx's ESM loader and then runs the TypeScript CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
await main();
