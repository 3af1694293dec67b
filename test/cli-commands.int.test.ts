import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTtl } from '../bin/cli-commands.js';
import { NodeProcess, runCli } from './support/node-process.js';
import { TestClient, until } from './support/ws-client.js';

/** `switchboard token`, `switchboard send` and `switchboard --help` through the compiled CLI, against a real node. */

let node: NodeProcess;
beforeAll(async () => {
  node = await NodeProcess.start();
});
afterAll(async () => {
  await node?.stop();
  await node?.removeData();
});

/** The env a user of the node's data dir has: no secrets in the environment, the node's port. */
const dataDirEnv = () => ({ SWITCHBOARD_DATA_DIR: node.dataDir, SWITCHBOARD_PORT: String(node.port) });

describe('switchboard token', () => {
  it('mints a token (from SWITCHBOARD_JWT_SECRET) that the running node accepts', async () => {
    const { code, stdout, stderr } = await runCli({ SWITCHBOARD_JWT_SECRET: node.jwtSecret }, ['token', '--user', 'alice', '--device', 'laptop', '--kind', 'pc', '--ttl', '2h']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const token = stdout.trim();
    expect(decodeProtectedHeader(token).alg).toBe('HS256');
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'alice', dev: 'laptop', kind: 'pc' });
    expect(claims.exp! - claims.iat!).toBe(7200);
    const c = await TestClient.connect(node.wsUrl);
    c.send({ type: 'hello', token });
    expect(await c.next()).toMatchObject({ type: 'welcome', user: 'alice', device: 'laptop', kind: 'pc' });
    c.close();
  });

  it('a mobile token from the data dir\'s generated secret; send with the data dir\'s generated API key', async () => {
    const secretless = await NodeProcess.start({ jwtSecret: '', apiKey: '' });
    try {
      const { code, stdout } = await runCli({ SWITCHBOARD_DATA_DIR: secretless.dataDir }, ['token', '--user', 'bob', '--device', 'iphone', '--kind', 'mobile', '--os', 'ios']);
      expect(code).toBe(0);
      expect(decodeJwt(stdout.trim())).toMatchObject({ sub: 'bob', dev: 'iphone', kind: 'mobile', os: 'ios' });
      const ws = new WebSocket(secretless.wsUrl);
      const welcome = await new Promise<any>((resolve, reject) => {
        ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', token: stdout.trim() })));
        ws.on('message', (d) => resolve(JSON.parse(d.toString())));
        ws.on('close', (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
      });
      expect(welcome).toMatchObject({ type: 'welcome', user: 'bob', kind: 'mobile' });
      ws.close();
      const sent = await runCli({ SWITCHBOARD_DATA_DIR: secretless.dataDir, SWITCHBOARD_PORT: String(secretless.port) }, ['send', '--to', 'bob', '--text', 'hi', '--id', 'dd-1']);
      expect(sent.stderr).toBe('');
      expect(JSON.parse(sent.stdout)).toEqual({ id: 'dd-1', status: 'accepted' });
    } finally {
      await secretless.stop();
      await secretless.removeData();
    }
  });

  it.each([
    [['--device', 'd', '--kind', 'pc'], /--user is required/],
    [['--user', 'u', '--kind', 'pc'], /--device is required/],
    [['--user', 'u', '--device', 'd'], /--kind is required/],
    [['--user', '', '--device', 'd', '--kind', 'pc'], /--user must be 1-128 printable characters/],
    [['--user', 'u', '--device', 'd', '--kind', 'mobile', '--os', 'ios', '--bot'], /--bot is only for --kind pc/],
    [['--user', 'u', '--device', 'd', '--kind', 'mobile', '--os', 'symbian'], /--os must be one of ios, android, harmony, web/],
    [['--user', 'u', '--device', 'd', '--kind', 'tablet'], /--kind must be pc or mobile/],
    [['--user', 'u', '--device', 'd', '--kind', 'mobile'], /--os is required for --kind mobile \(ios, android, harmony, web\)/],
    [['--user', 'u', '--device', 'd', '--kind', 'pc', '--ttl', 'forever'], /--ttl must be/],
    [['--user', 'u', '--device', 'd', '--kind', 'pc', '--colour', 'red'], /Unknown option '--colour'/],
  ])('refuses %j with exit 2 and one line', async (args, message) => {
    const { code, stdout, stderr } = await runCli({ SWITCHBOARD_JWT_SECRET: node.jwtSecret }, ['token', ...args]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
  });

  it('--bot mints a PC token with "bot": true; the node takes it as a bridge that never makes the PC active', async () => {
    const { code, stdout, stderr } = await runCli({ SWITCHBOARD_JWT_SECRET: node.jwtSecret }, ['token', '--user', 'botty', '--device', 'bridge', '--kind', 'pc', '--bot']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const token = stdout.trim();
    expect(decodeJwt(token)).toMatchObject({ sub: 'botty', dev: 'bridge', kind: 'pc', bot: true });
    const plain = decodeJwt((await runCli({ SWITCHBOARD_JWT_SECRET: node.jwtSecret }, ['token', '--user', 'u', '--device', 'd', '--kind', 'pc'])).stdout.trim());
    expect(plain).not.toHaveProperty('bot');
    const c = await TestClient.connect(node.wsUrl);
    c.send({ type: 'hello', token });
    await c.next((f) => f.type === 'welcome');
    c.send({ type: 'presence', state: 'active' });
    await until(async () => (await node.http('GET', '/v1/users/botty')).body.pc.sessions === 1);
    // Frames are handled in order: once the pong is back, the presence is on its way to the user actor ahead of this query.
    c.send({ type: 'ping' });
    await c.next((f) => f.type === 'pong');
    expect((await node.http('GET', '/v1/users/botty')).body.pc).toEqual({ state: 'inactive', reason: 'no_pc', sessions: 1 });
    c.close();
  });

  it('without any secret: says where it looked, exit 2, never prints a secret', async () => {
    const { code, stderr } = await runCli({ SWITCHBOARD_DATA_DIR: '/nonexistent-switchboard-dir' }, ['token', '--user', 'u', '--device', 'd', '--kind', 'pc']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/no SWITCHBOARD_JWT_SECRET set and no \/nonexistent-switchboard-dir\/jwt-secret/);
  });

  it('parseTtl: seconds or s/m/h/d, 1 s to 365 d', () => {
    expect([parseTtl('90'), parseTtl('30s'), parseTtl('15m'), parseTtl('1h'), parseTtl('7d')]).toEqual([90, 30, 900, 3600, 604800]);
    for (const bad of ['0', '366d', '1w', '-5', '1.5h', '']) expect(() => parseTtl(bad)).toThrow(/--ttl must be/);
  });
});

describe('switchboard send', () => {
  it('sends through the HTTP API (SWITCHBOARD_API_KEY, the node\'s port); the user gets it; the same id is a duplicate', async () => {
    const token = (await runCli({ SWITCHBOARD_JWT_SECRET: node.jwtSecret }, ['token', '--user', 'carol', '--device', 'desk', '--kind', 'pc'])).stdout.trim();
    const c = await TestClient.connect(node.wsUrl);
    c.send({ type: 'hello', token });
    await c.next((f) => f.type === 'welcome');
    c.send({ type: 'presence', state: 'active' });
    await until(async () => (await node.http('GET', '/v1/users/carol')).body.pc.state === 'active');
    const { code, stdout } = await runCli({ ...dataDirEnv(), SWITCHBOARD_API_KEY: node.apiKey }, ['send', '--to', 'carol', '--text', 'hi from the CLI', '--id', 'cli-1']);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ id: 'cli-1', status: 'accepted' });
    expect(await c.message('cli-1')).toMatchObject({ text: 'hi from the CLI' });
    const again = await runCli({ SWITCHBOARD_API_KEY: node.apiKey, SWITCHBOARD_URL: node.url }, ['send', '--to', 'carol', '--text', 'x', '--id', 'cli-1']);
    expect(JSON.parse(again.stdout)).toEqual({ id: 'cli-1', status: 'duplicate' });
    c.close();
  });

  it('a wrong key: exit 1 with the typed error', async () => {
    const { code, stderr } = await runCli({ SWITCHBOARD_API_KEY: 'wrong-key-0123456789', SWITCHBOARD_URL: node.url }, ['send', '--to', 'carol', '--text', 'x']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/send failed: unauthorized/);
    expect(stderr).not.toContain('wrong-key-0123456789');
  });

  it('a node that is down (port 2: nothing listens, and fetch does not bar it): exit 1 naming the URL and the cause; a --url that is no http(s) URL: exit 2', async () => {
    const down = await runCli({ SWITCHBOARD_API_KEY: node.apiKey, SWITCHBOARD_URL: 'http://127.0.0.1:2' }, ['send', '--to', 'carol', '--text', 'x']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/send failed: transport: HTTP POST http:\/\/127\.0\.0\.1:2\/v1\/messages failed: fetch failed \(connect ECONNREFUSED 127\.0\.0\.1:2\)/);
    const bad = await runCli({ SWITCHBOARD_API_KEY: node.apiKey }, ['send', '--to', 'carol', '--text', 'x', '--url', '127.0.0.1:7400']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--url: http\.url must be an http\(s\) URL/);
    const badEnv = await runCli({ SWITCHBOARD_API_KEY: node.apiKey, SWITCHBOARD_URL: 'ftp://127.0.0.1' }, ['send', '--to', 'carol', '--text', 'x']);
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/SWITCHBOARD_URL: http\.url must be an http\(s\) URL/);
  });
});

describe('switchboard --help', () => {
  it('lists the commands and every environment variable the node reads', async () => {
    const { code, stdout } = await runCli({}, ['--help']);
    expect(code).toBe(0);
    for (const command of ['start', 'token --user', 'send --to', 'help']) expect(stdout).toContain(command);
    const runtime = fileURLToPath(new URL('../runtime/', import.meta.url));
    const read = new Set<string>();
    for (const f of readdirSync(runtime)) for (const m of readFileSync(runtime + f, 'utf8').matchAll(/SWITCHBOARD_[A-Z0-9_]+[A-Z0-9]/g)) read.add(m[0]);
    expect(read.size).toBeGreaterThan(20);
    expect([...read].filter((v) => !stdout.includes(v))).toEqual([]);
  });
});
