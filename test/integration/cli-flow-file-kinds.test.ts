/**
 * `tenaz run` loads a flow file of any kind a project may have: .ts, .cts, .mts, .js,
 * .cjs, .mjs, in a CommonJS project (`"type": "commonjs"`, or no type at all) and in an
 * ES module one, with `tenaz` installed in the project's node_modules (linked to this
 * checkout). Each flow calls a task, so the file's `tenaz` must be the very module
 * instance the CLI runs: with a second copy, no flow would be found, or its task would
 * miss the flow run.
 *
 * Regression: a .cts file failed with "cannot load c.cts: Error: request for './api.js'
 * is not in cache" (exit 2): tsx's ESM hook compiled it and Node ran it under the ESM
 * loader's stand-in for `require`, which cannot load tenaz, an ES module.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runTenaz } from '../fixtures/cli.js';

const SPAWN_TIMEOUT_MS = 30_000;

const ESM_BODY = (name: string, typed: boolean) => {
  const n = typed ? 'n: number' : 'n';
  return (
    `import { flow, task } from 'tenaz';\n` +
    `const double = task({ name: 'double' }, async (${n}) => n * 2);\n` +
    `export const f = flow({ name: '${name}' }, async () => ({ kind: '${name}', value: await double(21) }));\n`
  );
};
const CJS_BODY = (name: string) =>
  `const { flow, task } = require('tenaz');\n` +
  `const double = task({ name: 'double' }, async (n) => n * 2);\n` +
  `exports.f = flow({ name: '${name}' }, async () => ({ kind: '${name}', value: await double(21) }));\n`;

/** Flow files by name, for a project whose package.json says `type` (undefined: no type field). */
function flowFiles(type: string | undefined): Record<string, string> {
  const commonJs = type !== 'module';
  // One base name each: tsx resolves flow.js to a flow.ts beside it, as an import of './flow.js' would.
  return {
    'ts-flow.ts': ESM_BODY('ts', true),
    'cts-flow.cts': ESM_BODY('cts', true),
    'mts-flow.mts': ESM_BODY('mts', true),
    'cjs-flow.cjs': CJS_BODY('cjs'),
    'mjs-flow.mjs': ESM_BODY('mjs', false),
    // A .js file is written the way its package reads it.
    'js-flow.js': commonJs ? CJS_BODY('js') : ESM_BODY('js', false),
  };
}

const PROJECTS: Array<[label: string, type: string | undefined]> = [
  ['"type": "commonjs"', 'commonjs'],
  ['no "type"', undefined],
  ['"type": "module"', 'module'],
];

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tenaz-file-kinds-'));
  for (const [, type] of PROJECTS) {
    const project = join(root, type ?? 'untyped');
    await mkdir(join(project, 'node_modules'), { recursive: true });
    await symlink(REPO_ROOT, join(project, 'node_modules', 'tenaz'), 'dir');
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', ...(type === undefined ? {} : { type }) }));
    for (const [file, text] of Object.entries(flowFiles(type))) await writeFile(join(project, file), text);
    await writeFile(join(project, 'broken.cts'), "import { flow } from 'tenaz';\nexport const f = flow({ name: 'f' }, async () => {;\n");
  }
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe.concurrent('tenaz run on flow files of every kind', { timeout: SPAWN_TIMEOUT_MS }, () => {
  const cases = PROJECTS.flatMap(([label, type]) => ['cts', 'mts', 'ts', 'cjs', 'mjs', 'js'].map((ext) => [ext, label, type] as const));

  it.each(cases)('runs a .%s flow file in a project with %s and prints its result', async (ext, _label, type) => {
    const { code, stdout, stderr } = await runTenaz(['run', `${ext}-flow.${ext}`, '--log-level', 'warn'], { cwd: join(root, type ?? 'untyped') });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ kind: ext, value: 42 });
  });

  it('names a .cts file with a syntax error by its own name, not the .ts one tsx compiles it as', async () => {
    const { code, stdout, stderr } = await runTenaz(['run', 'broken.cts'], { cwd: join(root, 'commonjs') });
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^tenaz: cannot load broken\.cts: \/.*\/broken\.cts:\d+:\d+: ERROR: [^\n]*\n$/);
  });
});
