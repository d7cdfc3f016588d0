/**
 * Loads the user's flow file, TypeScript or JavaScript, into this process's
 * module graph.
 *
 * Why not tsx's `tsImport`: it loads the file under a fresh loader namespace,
 * so the file's `import ... from 'tenaz'` gets a second copy of every tenaz
 * module, with its own ambient orchestrator and run context. Task calls inside
 * the flow would then miss the flow run the CLI started. So tsx is registered
 * once for the whole process and the file is loaded with a plain `import()`,
 * and the bare specifier `tenaz` is pointed at the entry this CLI itself runs
 * from (`src/index.ts` in a checkout, `dist/src/index.js` when built), which
 * also makes `import 'tenaz'` work in a checkout that was never built. Only ESM
 * imports are aliased: a file that loads as CommonJS (a .ts file outside a
 * "type": "module" package, a .cts or .cjs file) finds `tenaz` in node_modules as
 * usual, whose `dist/src/index.js` is the very module the CLI runs from (Node's
 * require(esm) hands back the instance already loaded).
 *
 * A .cts file is the exception to the plain `import()`: tsx's ESM hook compiles
 * it and hands Node the source, and Node 20 then runs it under the ESM loader's
 * stand-in for `require`, which cannot load an ES module: `require('tenaz')` fails
 * with "request for './api.js' is not in cache". Loaded with `require`, it goes
 * through Node's own CommonJS loader and tsx's CommonJS hook instead, as a .ts
 * file of a CommonJS package and a .cjs file already do.
 */
import { existsSync, statSync } from 'node:fs';
import { createRequire, register as registerHooks } from 'node:module';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CliError } from './errors.js';

/** The CLI's own entry point: `tenaz` in user files must resolve to the same module instances. */
const ENTRY_URL = new URL(import.meta.url.endsWith('.ts') ? '../index.ts' : '../index.js', import.meta.url).href;

// Runs in Node's loader thread, so it must be plain JavaScript with no imports. It hands the
// target on to the next resolver (tsx) rather than answering itself: tsx loads only what it resolved.
const ALIAS_HOOK = `
let target;
export function initialize(data) { target = data.target; }
export function resolve(specifier, context, next) {
  return next(specifier === 'tenaz' ? target : specifier, context);
}`;

let hooksInstalled = false;

async function installHooks(): Promise<void> {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Running from .ts sources means bin/tenaz.js (or the tsx command) has registered tsx already.
  if (!import.meta.url.endsWith('.ts')) {
    // Both halves, as the tsx command does: a .ts file outside a "type": "module" package loads as CommonJS.
    const [cjs, esm] = await Promise.all([import('tsx/cjs/api'), import('tsx/esm/api')]);
    cjs.register();
    esm.register();
  }
  registerHooks(`data:text/javascript,${encodeURIComponent(ALIAS_HOOK)}`, { data: { target: ENTRY_URL } });
}

/**
 * Checks that `file` (relative to `cwd`) is a file, before a command spends
 * time connecting to a server; `loadFlowFile` checks again.
 */
export function assertFlowFile(file: string, cwd: string): void {
  const path = resolve(cwd, file);
  if (!existsSync(path)) throw new CliError(`no such file: ${file}`);
  if (statSync(path).isDirectory()) throw new CliError(`${file} is a directory; give a TypeScript or JavaScript file`);
}

/**
 * Imports `file` (relative to `cwd`) and returns its exports. A missing file
 * or one that fails to load (syntax error, throwing module code) is a
 * `CliError` with a one-line message.
 */
export async function loadFlowFile(file: string, cwd: string): Promise<Record<string, unknown>> {
  assertFlowFile(file, cwd);
  const path = resolve(cwd, file);
  await installHooks();
  try {
    if (extname(path) === '.cts') return createRequire(import.meta.url)(path) as Record<string, unknown>;
    return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new CliError(`cannot load ${file}: ${describeLoadError(error, path)}`, { cause: error });
  }
}

/** One line that says what went wrong: esbuild's `file:line:col: ERROR: ...` line when there is one. */
function describeLoadError(error: unknown, path: string): string {
  if (!(error instanceof Error)) return String(error);
  const lines = error.message.split('\n').map((line) => line.trim());
  const located = lines.find((line) => line.includes(' ERROR: '));
  // tsx hands esbuild a .cts or .mts file under a .ts name: say the name the user gave.
  const renamed = /\.[cm]ts$/.test(path) ? `${path.slice(0, -3)}ts:` : undefined;
  if (located !== undefined) return renamed !== undefined && located.startsWith(renamed) ? `${path}:${located.slice(renamed.length)}` : located;
  // Node's own SyntaxError keeps the location in the first line of its stack, not in its message.
  const where = error instanceof SyntaxError ? error.stack?.split('\n')[0] : undefined;
  const first = lines[0] ?? '';
  const message = `${error.name}: ${first}`;
  return where && /:\d+$/.test(where) ? `${message} (${where.replace(/^file:\/\//, '')})` : message;
}
