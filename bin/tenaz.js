#!/usr/bin/env node
// Starts the tenaz CLI: the compiled build when there is a current one (an
// installed package, or a checkout after `npm run build`), else the TypeScript
// sources through tsx, so a fresh git checkout works without a build and a
// stale build never hides newer sources.
import { existsSync, readdirSync, statSync } from 'node:fs';

const built = new URL('../dist/src/cli/main.js', import.meta.url);
let cli;
if (isBuildCurrent()) {
  cli = await import(built.href);
} else {
  // Both halves, as the tsx command does: user files outside a "type": "module" package load as CommonJS.
  const [cjs, esm] = await Promise.all([import('tsx/cjs/api'), import('tsx/esm/api')]);
  cjs.register();
  esm.register();
  cli = await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
await cli.runCli(process.argv);

/** Whether the build exists and, in a checkout (sources present), is newer than every source file. */
function isBuildCurrent() {
  if (!existsSync(built)) return false;
  const sources = [new URL('../src/', import.meta.url), new URL('../actors/', import.meta.url)];
  if (!existsSync(sources[0])) return true;
  const builtAt = statSync(built).mtimeMs;
  return sources.every((dir) => newestSourceMs(dir) <= builtAt);
}

function newestSourceMs(dir) {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(new URL(`${entry.name}/`, dir)));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(new URL(entry.name, dir)).mtimeMs);
  }
  return newest;
}
