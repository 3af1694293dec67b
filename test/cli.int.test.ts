import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from './support/node-process.js';
import { TestClient, signToken } from './support/ws-client.js';

/** PROTOCOL.md section 1 through the real CLI: `node dist/bin/switchboard.js start`. */

describe('a bad configuration value stops the CLI with exit 2 and one line naming the variable', () => {
  const cases: [name: string, value: string, must: RegExp][] = [
    ['SWITCHBOARD_PORT', '70000', /SWITCHBOARD_PORT must be an integer 0-65535/],
    ['SWITCHBOARD_PORT', 'eighty', /SWITCHBOARD_PORT must be an integer 0-65535/],
    ['SWITCHBOARD_HOST', 'not a host', /SWITCHBOARD_HOST must be/],
    ['SWITCHBOARD_NATS_URL', 'http://nats:4222', /SWITCHBOARD_NATS_URL must be/],
    ['SWITCHBOARD_NODE_ID', 'has space', /SWITCHBOARD_NODE_ID must be/],
    ['SWITCHBOARD_ROLES', 'gateway,banana', /SWITCHBOARD_ROLES must be/],
    ['SWITCHBOARD_PARTITIONS', '0', /SWITCHBOARD_PARTITIONS must be an integer/],
    ['SWITCHBOARD_SUBJECT_PREFIX', 'a.b', /SWITCHBOARD_SUBJECT_PREFIX must be/],
    ['SWITCHBOARD_JWT_SECRET', 'short', /SWITCHBOARD_JWT_SECRET must be at least 16 characters/],
    ['SWITCHBOARD_API_KEY', 'short', /SWITCHBOARD_API_KEY must be at least 16 characters/],
    ['SWITCHBOARD_ACK_TIMEOUT_MS', '0', /SWITCHBOARD_ACK_TIMEOUT_MS must be an integer/],
    ['SWITCHBOARD_PRESENCE_TTL_MS', '-5', /SWITCHBOARD_PRESENCE_TTL_MS must be an integer/],
    ['SWITCHBOARD_PUSH_DELAY_MS', '1.5', /SWITCHBOARD_PUSH_DELAY_MS must be an integer/],
    ['SWITCHBOARD_APNS_ENDPOINT', 'ftp://apns', /SWITCHBOARD_APNS_ENDPOINT must be/],
    ['SWITCHBOARD_APNS_ENDPOINT', 'http://127.0.0.1:8443', /SWITCHBOARD_APNS_ENDPOINT must be an https:\/\/ URL/],
    ['SWITCHBOARD_APNS_KEY_ID', 'ABC123', /SWITCHBOARD_APNS_KEY_FILE must be set together/],
    ['SWITCHBOARD_FCM_ENDPOINT', 'nope', /SWITCHBOARD_FCM_ENDPOINT must be/],
    ['SWITCHBOARD_LOG_LEVEL', 'loud', /SWITCHBOARD_LOG_LEVEL must be/],
    ['SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES', '64MiB', /^switchboard: SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES must be an integer 0-1099511627776$/],
  ];
  it.each(cases)('%s=%j', async (name, value, must) => {
    const { code, stdout, stderr } = await runCli({ [name]: value, SWITCHBOARD_DATA_DIR: join(tmpdir(), 'switchboard-never-created') });
    expect(code).toBe(2);
    const lines = (stdout + stderr).split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(must);
    // The line names the variable (for the APNs group: the variable the message is about).
    expect(lines[0]).toMatch(/SWITCHBOARD_[A-Z_]+ must be /);
    // A secret-looking value is not echoed back.
    if (name.includes('SECRET') || name.includes('KEY')) expect(lines[0]).not.toContain(value);
  });

  it('an unknown command exits 2 with the usage', async () => {
    const { code, stderr } = await runCli({}, ['frobnicate']);
    expect(code).toBe(2);
    expect(stderr).toContain('unknown command "frobnicate"');
    expect(stderr).toContain('usage: switchboard <command>');
  });
});

/** Starts the CLI with exactly `env` (no secrets unless given) and resolves once it listens. */
async function startRaw(env: Record<string, string>): Promise<{ proc: ChildProcess; port: number; lines: string[] }> {
  const proc = spawn(process.execPath, [BIN, 'start'], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (line.includes('switchboard listening')) resolve(JSON.parse(line).port);
      }
    });
    proc.stderr!.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter(Boolean)));
    proc.on('exit', (code, signal) => reject(new Error(`exited (${code ?? signal}) before listening:\n${lines.join('\n')}`)));
  });
  return { proc, port, lines };
}

async function stopRaw(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  proc.kill('SIGTERM');
  return exited;
}

describe('single node without SWITCHBOARD_JWT_SECRET / SWITCHBOARD_API_KEY', () => {
  const procs: ChildProcess[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const p of procs) await stopRaw(p);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('generates both secret files (mode 0600), logs where but never what, and a restart reuses them', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-secrets-'));
    dirs.push(dataDir);
    const env = { SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_LOG_LEVEL: 'info' };

    const first = await startRaw(env);
    procs.push(first.proc);
    const jwtFile = join(dataDir, 'jwt-secret');
    const keyFile = join(dataDir, 'api-key');
    const jwtSecret = (await readFile(jwtFile, 'utf8')).trim();
    const apiKey = (await readFile(keyFile, 'utf8')).trim();
    expect(jwtSecret.length).toBeGreaterThanOrEqual(16);
    expect(apiKey.length).toBeGreaterThanOrEqual(16);
    expect(jwtSecret).not.toBe(apiKey);
    expect((await stat(jwtFile)).mode & 0o777).toBe(0o600);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);

    // The location is printed, the values never.
    const out1 = first.lines.join('\n');
    expect(out1).toContain(jwtFile);
    expect(out1).toContain(keyFile);
    expect(out1).not.toContain(jwtSecret);
    expect(out1).not.toContain(apiKey);

    // The generated secrets are the ones in force: the key authorizes HTTP, the secret signs client tokens.
    const base = `http://127.0.0.1:${first.port}`;
    expect((await fetch(`${base}/v1/users/alice`, { headers: { authorization: `Bearer ${apiKey}` } })).status).toBe(200);
    expect((await fetch(`${base}/v1/users/alice`, { headers: { authorization: 'Bearer wrong-key-wrong-key' } })).status).toBe(401);
    const oldToken = await signToken(jwtSecret, { sub: 'alice', dev: 'desk', kind: 'pc' });
    const c1 = await TestClient.connect(`ws://127.0.0.1:${first.port}/v1/ws`);
    c1.send({ type: 'hello', token: oldToken });
    expect((await c1.next((f) => f.type === 'welcome')).user).toBe('alice');
    c1.close();

    expect(await stopRaw(first.proc)).toBe(0);

    // Restart on the same dir: the same secrets, so existing clients' tokens and chat servers' key stay valid.
    const second = await startRaw(env);
    procs.push(second.proc);
    expect((await readFile(jwtFile, 'utf8')).trim()).toBe(jwtSecret);
    expect((await readFile(keyFile, 'utf8')).trim()).toBe(apiKey);
    const out2 = second.lines.join('\n');
    expect(out2).toContain(jwtFile);
    expect(out2).not.toContain(jwtSecret);
    expect(out2).not.toContain(apiKey);
    const base2 = `http://127.0.0.1:${second.port}`;
    expect((await fetch(`${base2}/v1/users/alice`, { headers: { authorization: `Bearer ${apiKey}` } })).status).toBe(200);
    const c2 = await TestClient.connect(`ws://127.0.0.1:${second.port}/v1/ws`);
    c2.send({ type: 'hello', token: oldToken });
    expect((await c2.next((f) => f.type === 'welcome')).user).toBe('alice');
    c2.close();

    expect(await stopRaw(second.proc)).toBe(0);
    // Nothing logged on the way out leaked them either.
    const all = [...first.lines, ...second.lines].join('\n');
    expect(all).not.toContain(jwtSecret);
    expect(all).not.toContain(apiKey);
  });

  it('configured secrets win: no secret files are written', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-secrets-'));
    dirs.push(dataDir);
    const apiKey = 'configured-api-key-0123456789';
    const n = await startRaw({
      SWITCHBOARD_PORT: '0',
      SWITCHBOARD_DATA_DIR: dataDir,
      SWITCHBOARD_API_KEY: apiKey,
      SWITCHBOARD_JWT_SECRET: 'configured-jwt-secret-0123456789',
      SWITCHBOARD_NODE_ID: 'cli-node-7',
    });
    procs.push(n.proc);
    // Every line names the node that wrote it (a cluster's logs are read merged).
    const logged = n.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { node?: string });
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) expect(line.node).toBe('cli-node-7');
    await expect(stat(join(dataDir, 'jwt-secret'))).rejects.toThrow(/ENOENT/);
    await expect(stat(join(dataDir, 'api-key'))).rejects.toThrow(/ENOENT/);
    expect((await fetch(`http://127.0.0.1:${n.port}/v1/users/bob`, { headers: { authorization: `Bearer ${apiKey}` } })).status).toBe(200);
    expect(n.lines.join('\n')).not.toContain(apiKey);
    expect(await stopRaw(n.proc)).toBe(0);
  });
});
