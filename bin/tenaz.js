#!/usr/bin/env node
// Starts the tenaz CLI: the compiled build when there is one (an installed
// package, or a checkout after `npm run build`), else the TypeScript sources
// through tsx, so a fresh git checkout works without a build.
import { existsSync } from 'node:fs';

const built = new URL('../dist/src/cli/main.js', import.meta.url);
let cli;
if (existsSync(built)) {
  cli = await import(built.href);
} else {
  // Both halves, as the tsx command does: user files outside a "type": "module" package load as CommonJS.
  const [cjs, esm] = await Promise.all([import('tsx/cjs/api'), import('tsx/esm/api')]);
  cjs.register();
  esm.register();
  cli = await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
await cli.runCli(process.argv);
