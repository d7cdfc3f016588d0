/**
 * The package as another project gets it: `npm pack`, unpacked into a fresh
 * project's node_modules, imported from `tenaz` by an ES module and by a
 * CommonJS one, and its CLI running a TypeScript flow file of a CommonJS project.
 * Its dependencies are linked from this repository's node_modules (no network).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '../..');
let project: string;

const FLOW = `
  const add = task({ name: 'add' }, async (a, b) => a + b);
  const sum = flow({ name: 'sum' }, async (n) => add(n, 1));
  const orchestrator = createOrchestrator({ logger: pino({ level: 'silent' }) });
  orchestrator.start(sum, 41).result().then(async (value) => { console.log(JSON.stringify(value)); await orchestrator.close(); });
`;

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'tenaz-package-'));
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', project], { cwd: repo, encoding: 'utf8' })) as Array<{ filename: string }>;
  const modules = join(project, 'node_modules');
  mkdirSync(join(modules, 'tenaz'), { recursive: true });
  execFileSync('tar', ['-xzf', join(project, packed[0]!.filename), '-C', join(modules, 'tenaz'), '--strip-components=1']);
  const { dependencies } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const name of [...Object.keys(dependencies), 'pino']) {
    const target = join(modules, name);
    mkdirSync(join(target, '..'), { recursive: true });
    try {
      symlinkSync(join(repo, 'node_modules', name), target, 'dir');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  // A CommonJS project, as `npm init -y` makes it.
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'commonjs' }));
});
afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

/** Runs node in the project and returns its stdout; its stderr (the CLI's logs) is read, not shown. */
function node(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: project, encoding: 'utf8', env: { ...process.env, TENAZ_NATS_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('the npm package', { timeout: 60_000 }, () => {
  it('ships the build with its type declarations, and no tests', () => {
    const files = execFileSync('find', ['node_modules/tenaz', '-name', '*.js', '-o', '-name', '*.d.ts'], { cwd: project, encoding: 'utf8' }).split('\n');
    expect(files).toContain('node_modules/tenaz/dist/src/index.js');
    expect(files).toContain('node_modules/tenaz/dist/src/index.d.ts');
    expect(files).toContain('node_modules/tenaz/bin/tenaz.js');
    expect(files.filter((file) => file.includes('.test.'))).toEqual([]);
  });

  it('is imported from tenaz by an ES module', () => {
    writeFileSync(join(project, 'main.mjs'), `import { createOrchestrator, flow, task } from 'tenaz';\nimport { pino } from 'pino';\n${FLOW}`);
    expect(node(['main.mjs']).trim()).toBe('42');
  });

  it('is required from tenaz by a CommonJS module', () => {
    writeFileSync(join(project, 'main.cjs'), `const { createOrchestrator, flow, task } = require('tenaz');\nconst { pino } = require('pino');\n${FLOW}`);
    expect(node(['main.cjs']).trim()).toBe('42');
  });

  it("runs a TypeScript flow file of a CommonJS project with the package's CLI", () => {
    writeFileSync(
      join(project, 'flows.ts'),
      `import { flow, task } from 'tenaz';\nconst add = task({ name: 'add' }, async (a: number, b: number) => a + b);\nexport const sum = flow({ name: 'sum' }, async (n: number = 1) => add(n, 1));\n`,
    );
    // The logs go to stderr: stdout is the result alone.
    expect(node(['node_modules/tenaz/bin/tenaz.js', 'run', 'flows.ts', '--param', 'n=41'])).toBe('42\n');
  });
});
