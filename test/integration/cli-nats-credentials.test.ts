/**
 * The command line against servers that ask more than a URL: an nkey user, and TLS with a
 * certificate of a CA of the test's own. `--nats-nkey` and `--nats-tls-ca` (or their
 * environment variables) carry what the URL cannot; without them the command says, in one
 * line with exit 2, that it could not connect.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { TenazProcesses } from '../fixtures/nats/tenaz-process.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';

const CHAIN = 'test/fixtures/nats/chain.ts';
const dir = mkdtempSync(join(tmpdir(), 'tenaz-credentials-'));
const servers: NatsServer[] = [];
afterAll(async () => {
  for (const server of servers) await server.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function processesOf(context: TestContext): TenazProcesses {
  const processes = new TenazProcesses();
  context.onTestFinished(() => processes.killAll());
  return processes;
}

/** A worker and a run of `chain` with the given connection arguments: the run's exit code and output. */
async function runChain(processes: TenazProcesses, connection: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const worker = processes.spawn(['worker', CHAIN, '--no-flows', ...connection]);
  await worker.waitFor('stderr', /^tenaz: serving /m);
  const run = processes.spawn(['run', CHAIN, '--flow', 'chain', '--param', 'n=2', '--log-level', 'warn', ...connection]);
  const { code } = await run.exited;
  return { code, stdout: run.stdout, stderr: run.stderr };
}

describe('an nkey user', () => {
  const user = createUser();
  const seedFile = join(dir, 'user.nk');
  let url = '';
  beforeAll(async () => {
    writeFileSync(seedFile, new TextDecoder().decode(user.getSeed()));
    const config = join(dir, 'nkey.conf');
    writeFileSync(config, `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }\n`);
    const server = await startNatsServer({ args: ['-c', config] });
    servers.push(server);
    url = server.url;
  });

  it('runs a flow with its tasks on a worker, both given the seed file by --nats-nkey', async (context) => {
    const result = await runChain(processesOf(context), ['--nats', url, '--nats-nkey', seedFile]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ total: 3 });
  });

  it('says in one line, exit 2, that the server refused it without it', async (context) => {
    const run = processesOf(context).spawn(['run', CHAIN, '--flow', 'chain', '--nats', url]);
    expect((await run.exited).code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^tenaz: NATS at nats:\/\/127\.0\.0\.1:\d+ refused/);
  });
});

describe('TLS with a CA of its own', () => {
  const ca = join(dir, 'ca.pem');
  let url = '';
  beforeAll(async () => {
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=tenaz test CA', '-keyout', 'ca-key.pem', '-out', 'ca.pem');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server-key.pem', '-out', 'server.csr');
    // nats.js checks a loopback IP's certificate against the name localhost.
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName = IP:127.0.0.1,DNS:localhost\n');
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', 'server.pem');
    const config = join(dir, 'tls.conf');
    writeFileSync(config, `tls { cert_file: "${join(dir, 'server.pem')}", key_file: "${join(dir, 'server-key.pem')}" }\n`);
    const server = await startNatsServer({ args: ['-c', config] });
    servers.push(server);
    url = server.url.replace('nats://', 'tls://');
  });

  it('runs a flow with its tasks on a worker, both trusting the server by --nats-tls-ca', async (context) => {
    const result = await runChain(processesOf(context), ['--nats', url, '--nats-tls-ca', ca]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ total: 3 });
  });

  it('says in one line, exit 2, that it could not connect to a server it cannot trust', async (context) => {
    const run = processesOf(context).spawn(['run', CHAIN, '--flow', 'chain', '--nats', url]);
    expect((await run.exited).code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^tenaz: could not connect to NATS at tls:\/\/127\.0\.0\.1:\d+: /);
  });
});
