import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { reaped } from './support/reap.js';
import { NODE_START_TIMEOUT_MS } from './support/node-process.js';

/**
 * README, first lines: `npm ci && npm start` is how a newcomer runs the node, and a SIGTERM sent to that `npm start`
 * (a terminal's `kill`, a supervisor that runs npm) must give the node its graceful stop. npm runs the script in
 * `sh -c`; Debian's sh (dash) kept itself between npm and the node and did not pass the signal on, so the node went on
 * running, orphaned, holding its port and its data dir's lock.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let dataDir: string | undefined;
afterEach(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  dataDir = undefined;
});

/** Whether a process with this pid exists (signal 0 checks without sending). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

it('SIGTERM to `npm start` stops the node gracefully: it logs "stopped" and its process is gone', async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'sb-npm-start-'));
  // --ignore-scripts: the start script itself without its prestart build (npm test builds dist/ first).
  const npm = reaped(spawn('npm', ['start', '--ignore-scripts', '--silent'], {
    cwd: ROOT,
    env: { ...process.env, SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const lines: string[] = [];
  let buffered = '';
  npm.stdout!.on('data', (b: Buffer) => {
    buffered += b.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  npm.stderr!.resume();
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  const listening = await new Promise<{ pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "switchboard listening" in ${NODE_START_TIMEOUT_MS} ms: ${lines.join('\n')}`)), NODE_START_TIMEOUT_MS);
    const look = (): void => {
      const line = lines.find((l) => l.includes('"switchboard listening"'));
      if (line === undefined) return void setTimeout(look, 20);
      clearTimeout(timer);
      resolve(JSON.parse(line) as { pid: number });
    };
    look();
  });
  expect(listening.pid).not.toBe(npm.pid);
  npm.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  // The node itself is gone, not left running under init.
  const deadline = Date.now() + 5000;
  while (alive(listening.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(alive(listening.pid)).toBe(false);
}, 60_000);
