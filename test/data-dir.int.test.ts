import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './support/nats-server.js';
import { NodeProcess, runCli } from './support/node-process.js';
import { msgId, uniqueUser } from './support/scenario.js';
import { mountTmpfs, tmpfsRefusal } from './support/tmpfs.js';
import { until } from './support/ws-client.js';

/**
 * One node per data dir, a data dir lost while running, and start-up errors that name their cause (issue 8 parts 4
 * and 5), with real processes.
 */

const started: NodeProcess[] = [];
afterAll(async () => {
  for (const n of started) await n.stop();
  for (const n of started) await n.removeData();
});

async function start(opts: Parameters<typeof NodeProcess.start>[0] = {}): Promise<NodeProcess> {
  const n = await NodeProcess.start(opts);
  started.push(n);
  return n;
}

const keys = () => ({ SWITCHBOARD_API_KEY: randomBytes(24).toString('base64url'), SWITCHBOARD_JWT_SECRET: randomBytes(32).toString('base64url') });

describe('one node per data dir', () => {
  it('a second node on the same dir exits 2 with one line naming the dir and the holder pid; a killed holder frees it', async () => {
    const first = await start();
    const second = await runCli({ SWITCHBOARD_DATA_DIR: first.dataDir, SWITCHBOARD_PORT: '0', ...keys() });
    expect(second.code).toBe(2);
    expect(second.stderr).toBe(`switchboard: SWITCHBOARD_DATA_DIR: data dir ${first.dataDir} is in use by pid ${first.proc.pid} (lock file ${join(first.dataDir, 'switchboard.lock')})\n`);
    expect(second.stdout).toBe('');
    // The first node is untouched.
    const user = uniqueUser('lock');
    expect((await first.send({ id: msgId(), to: user, text: 'still here' })).status).toBe(202);

    await first.kill('SIGKILL'); // leaves a stale lock behind
    const third = await start({ dataDir: first.dataDir, apiKey: first.apiKey, jwtSecret: first.jwtSecret });
    expect((await third.send({ id: msgId(), to: user, text: 'after takeover' })).status).toBe(202);
  }, 30_000);
});

describe('data dir deleted while running', () => {
  it('is noticed: accepts answer 503, /readyz turns false, one error line says why', async () => {
    const node = await start();
    const user = uniqueUser('gone');
    expect((await node.send({ id: msgId(), to: user, text: 'before' })).status).toBe(202);
    await rm(node.dataDir, { recursive: true, force: true });
    // Even before the watch notices, an accept written to a deleted file is refused (the file has no link left).
    const right = await node.send({ id: msgId(), to: user, text: 'right after' });
    expect(right.status).toBe(503);
    await until(async () => (await node.http('GET', '/readyz', undefined, { auth: false })).status === 503, 5000, '/readyz 503');
    const later = await node.send({ id: msgId(), to: user, text: 'later' });
    expect(later.status).toBe(503);
    await until(() => node.lines.some((l) => l.includes('refusing messages')), 5000, 'the error line');
    await new Promise((r) => setTimeout(r, 2500)); // several watch intervals: still one line
    const lines = node.lines.filter((l) => l.includes('refusing messages')).map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, dataDir: node.dataDir });
    expect(lines[0].msg).toContain(`data dir ${node.dataDir} is gone`);
  }, 30_000);
});

describe('start-up errors name their cause', () => {
  const refusal = tmpfsRefusal();
  it.skipIf(refusal !== undefined)('a read-only data dir says so (exit 1)', async () => {
    const fs = mountTmpfs(64, { readOnly: true });
    try {
      const res = await runCli({ SWITCHBOARD_DATA_DIR: fs.dir, SWITCHBOARD_PORT: '0', ...keys() });
      expect(res.code).toBe(1);
      expect(res.stderr).toBe(`switchboard: SWITCHBOARD_DATA_DIR: data dir ${fs.dir} is on a read-only file system (EROFS); set it to a writable directory\n`);
      const below = await runCli({ SWITCHBOARD_DATA_DIR: join(fs.dir, 'a', 'b'), SWITCHBOARD_PORT: '0', ...keys() });
      expect(below.code).toBe(1);
      expect(below.stderr).toBe(`switchboard: SWITCHBOARD_DATA_DIR: data dir ${join(fs.dir, 'a', 'b')} cannot be created: ${join(fs.dir, 'a')} (read-only file system)\n`);
    } finally {
      fs.unmount();
    }
  }, 30_000);

  it('a data dir that cannot be created fails at once instead of hanging (Node 20 recursive mkdir under /proc)', async () => {
    const res = await runCli({ SWITCHBOARD_DATA_DIR: '/proc/switchboard-test/data', SWITCHBOARD_PORT: '0', ...keys() });
    expect(res.code).toBe(1);
    expect(res.stderr).toBe('switchboard: SWITCHBOARD_DATA_DIR: data dir /proc/switchboard-test/data cannot be created: /proc/switchboard-test (ENOENT)\n');
  }, 30_000);

  it('a data dir that is a file is a wrong value: exit 2, the variable named', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'switchboard-test-')), 'a-file');
    await writeFile(file, 'not a dir');
    const res = await runCli({ SWITCHBOARD_DATA_DIR: join(file, 'data'), SWITCHBOARD_PORT: '0', ...keys() });
    expect(res.code).toBe(2);
    expect(res.stderr).toBe(`switchboard: SWITCHBOARD_DATA_DIR: data dir ${join(file, 'data')}: ${file} exists and is not a directory\n`);
  }, 30_000);

  it('an unreachable NATS is retried with a line per try, then named (exit 1)', async () => {
    const port = await freePort();
    const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-test-'));
    try {
      const res = await runCli({
        SWITCHBOARD_NATS_URL: `nats://127.0.0.1:${port}`, SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS: '2500',
        SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_PORT: '0', ...keys(),
      });
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(new RegExp(`^switchboard: NATS not reachable at nats://127\\.0\\.0\\.1:${port} \\(.+\\); tried \\d+ times over 3 s\\n$`));
      const tries = res.stdout.split('\n').filter((l) => l.includes('NATS not reachable')).map((l) => JSON.parse(l));
      expect(tries.length).toBeGreaterThanOrEqual(2);
      expect(tries.map((t) => t.attempt)).toEqual(tries.map((_, i) => i + 1));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 30_000);
});
