import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, NodeProcess } from './support/node-process.js';

/**
 * PROTOCOL.md section 1 through the real CLI (`node dist/bin/switchboard.js start`): a file a variable names that
 * the node cannot use, a host that cannot be one, a NATS URL nats.js cannot parse, and an address the listener cannot
 * open stop the process with exit code 2 and one line naming the variable. Key files are generated into a temp dir.
 */

const dir = mkdtempSync(join(tmpdir(), 'switchboard-cli-files-'));
/** Never created: the checks run before the data dir is opened. */
const DATA_DIR = join(dir, 'data-never-created');
const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

const rsaPem = String(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
const p256Pem = String(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
const account = (over: Record<string, unknown> = {}) =>
  JSON.stringify({ type: 'service_account', project_id: 'demo', client_email: 'sender@demo.iam.gserviceaccount.com', private_key: rsaPem, ...over });
const APNS = { SWITCHBOARD_APNS_KEY_ID: 'KEYID12345', SWITCHBOARD_APNS_TEAM_ID: 'TEAMID1234', SWITCHBOARD_APNS_TOPIC: 'com.example.chat' };
const SECRETS = { SWITCHBOARD_JWT_SECRET: 'j'.repeat(32), SWITCHBOARD_API_KEY: 'k'.repeat(32) };

/**
 * `runCli` that kills the node after `ms`: a start-up that is not refused (the bug these tests are about) would
 * otherwise keep running after the test timed out.
 */
async function runStart(env: Record<string, string>, ms = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [BIN, 'start'], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c));
  proc.stderr.on('data', (c: Buffer) => (stderr += c));
  const kill = setTimeout(() => proc.kill('SIGKILL'), ms);
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  clearTimeout(kill);
  return { code, stdout, stderr };
}

/** Runs `start` with `env` and expects exit 2 with exactly one output line matching `line`. */
async function refused(env: Record<string, string>, line: RegExp): Promise<string> {
  const { code, stdout, stderr } = await runStart({ SWITCHBOARD_DATA_DIR: DATA_DIR, SWITCHBOARD_PORT: '0', ...env });
  const lines = (stdout + stderr).split('\n').filter((l) => l.trim() !== '');
  expect(lines, stdout + stderr).toHaveLength(1);
  expect(lines[0]).toMatch(line);
  expect(code).toBe(2);
  expect(existsSync(DATA_DIR)).toBe(false);
  return lines[0];
}

describe('vendor credential files are read and checked at start', () => {
  it.each([
    ['a missing file', join(dir, 'missing.json'), /is unreadable \(ENOENT\)$/],
    ['a file holding "{"', write('brace.json', '{'), /is not valid JSON/],
    ['JSON without project_id', write('no-project.json', JSON.stringify({ client_email: 'a@b.c', private_key: rsaPem })), /has no "project_id"$/],
    ['JSON without client_email', write('no-email.json', account({ client_email: undefined })), /has no "client_email"$/],
    ['a private_key Node cannot load', write('bad-key.json', account({ private_key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' })), /has an unusable private_key/],
  ])('SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: %s -> exit 2 naming it, never the key', async (_what, path, problem) => {
    const line = await refused({ SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: path }, /^switchboard: SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE must be a readable Google service-account JSON file/);
    expect(line).toMatch(problem);
    expect(line).toContain(path);
    expect(line).not.toContain('BEGIN');
    expect(line).not.toContain(rsaPem.split('\n')[3]);
  });

  it.each([
    ['missing', join(dir, 'AuthKey_missing.p8'), /ENOENT\)$/],
    ['holding garbage', write('AuthKey_garbage.p8', 'garbage-key-material'), /not a PEM private key\)$/],
    ['holding an RSA key', write('AuthKey_rsa.p8', rsaPem), /it holds a key of type rsa\)$/],
  ])('SWITCHBOARD_APNS_KEY_FILE %s (with _KEY_ID, _TEAM_ID, _TOPIC set) -> exit 2 naming it', async (_what, path, problem) => {
    const line = await refused({ ...APNS, SWITCHBOARD_APNS_KEY_FILE: path }, /^switchboard: SWITCHBOARD_APNS_KEY_FILE must be a readable \.p8 file holding an EC P-256 \(ES256\) private key/);
    expect(line).toMatch(problem);
    expect(line).not.toContain('garbage-key-material');
  });

  it('an app of SWITCHBOARD_APPS_FILE with a broken key file -> exit 2 naming the apps file and the field', async () => {
    const apps = write('apps.json', JSON.stringify({ apps: { beta: { fcm: { serviceAccountFile: write('beta-sa.json', '{') } } } }));
    await refused({ SWITCHBOARD_APPS_FILE: apps }, /^switchboard: SWITCHBOARD_APPS_FILE must be a file where apps\.beta\.fcm\.serviceAccountFile is /);
  });

  it('mismatched VAPID keys -> exit 2 naming the public key', async () => {
    const webpush = (await import('web-push')).default;
    const [a, b] = [webpush.generateVAPIDKeys(), webpush.generateVAPIDKeys()];
    const line = await refused(
      { SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY: b.publicKey, SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY: a.privateKey, SWITCHBOARD_WEBPUSH_SUBJECT: 'mailto:ops@example.com' },
      /^switchboard: SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY must be /,
    );
    expect(line).not.toContain(a.privateKey);
  });

  it('good files: the node starts with both vendors on', async () => {
    const node = await NodeProcess.start({
      env: { ...APNS, SWITCHBOARD_APNS_KEY_FILE: write('AuthKey_good.p8', p256Pem), SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: write('good.json', account()) },
    });
    try {
      expect(node.lines.some((l) => l.includes('vendor push on: default: apns, fcm'))).toBe(true);
      expect(node.lines.join('\n')).not.toContain('BEGIN');
    } finally {
      await node.stop();
      await node.removeData();
    }
  });
});

describe('addresses', () => {
  it('SWITCHBOARD_HOST=999.1.1.1 -> exit 2 naming SWITCHBOARD_HOST (was exit 1, "getaddrinfo ENOTFOUND")', async () => {
    await refused({ SWITCHBOARD_HOST: '999.1.1.1' }, /^switchboard: SWITCHBOARD_HOST must be a host name or IP address$/);
  });

  it.each(['ws://127.0.0.1:8080', 'nats://127.0.0.1:99999', 'nats://999.1.1.1:4222'])('SWITCHBOARD_NATS_URL=%s -> exit 2 at once, not NATS retries', async (url) => {
    const started = Date.now();
    await refused({ ...SECRETS, SWITCHBOARD_NATS_URL: url }, /^switchboard: SWITCHBOARD_NATS_URL must be a comma-separated list of NATS URLs/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a port in use -> exit 2, stderr one line naming SWITCHBOARD_PORT', async () => {
    const holder = createServer();
    servers.push(holder);
    const port = await new Promise<number>((r) => holder.listen(0, '127.0.0.1', () => r((holder.address() as { port: number }).port)));
    const data = mkdtempSync(join(dir, 'data-'));
    const { code, stderr } = await runStart({ SWITCHBOARD_DATA_DIR: data, SWITCHBOARD_PORT: String(port), ...SECRETS });
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual([
      `switchboard: cannot listen on 127.0.0.1:${port}: the port is in use (EADDRINUSE); change SWITCHBOARD_PORT (or SWITCHBOARD_HOST), or stop what holds it`,
    ]);
  });

  it('an address that is not this machine\'s -> exit 2 naming SWITCHBOARD_HOST', async () => {
    const data = mkdtempSync(join(dir, 'data-'));
    const { code, stderr } = await runStart({ SWITCHBOARD_DATA_DIR: data, SWITCHBOARD_PORT: '0', SWITCHBOARD_HOST: '192.0.2.1', ...SECRETS });
    expect(code).toBe(2);
    expect(stderr.trim()).toMatch(/^switchboard: cannot listen on 192\.0\.2\.1:0: .*\(EADDRNOTAVAIL\); change SWITCHBOARD_HOST$/);
  });
});
