import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';

/**
 * README, first lines: `npm ci && npm start` is how a newcomer runs the node, and a SIGTERM sent to that `npm start`
 * (a terminal's `kill`, a supervisor that runs npm) must give the node its graceful stop. npm runs the script in
 * `sh -c`; Debian's sh (dash) kept itself between npm and the node and did not pass the signal on, so the node went on
 * running, orphaned, holding its port and its data dir's lock.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let started: NodeProcess | undefined;
afterEach(async () => {
  await started?.removeData();
  started = undefined;
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
  // --ignore-scripts: the start script itself without its prestart build (npm test builds dist/ first).
  const npm = (started = await NodeProcess.start({ command: ['npm', ['start', '--ignore-scripts', '--silent']], cwd: ROOT, env: { HOME: process.env.HOME ?? '/tmp' } }));
  const node = (JSON.parse(npm.lines.find((l) => l.includes('"switchboard listening"'))!) as { pid: number }).pid;
  expect(node).not.toBe(npm.proc.pid);
  expect(await npm.stop()).toEqual({ code: 0, signal: null });
  expect(npm.lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  // The node itself is gone, not left running under init.
  await expect.poll(() => alive(node), { timeout: 5000 }).toBe(false);
}, 60_000);
