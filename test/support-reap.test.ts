import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { reapAll, reaped } from './support/reap.js';

/** test/support/reap.ts: what a test file leaves running is killed at its end (vitest.config.ts setupFiles). */
describe('reaping what a test file left running', () => {
  it('kills a registered process still running, and forgets one that exited on its own', async () => {
    const stray = reaped(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }));
    const done = reaped(spawn(process.execPath, ['-e', ''], { stdio: 'ignore' }));
    await new Promise((r) => done.once('exit', r));
    expect(stray.exitCode).toBeNull();
    expect(await reapAll()).toBe(1);
    expect(stray.signalCode).toBe('SIGKILL');
    expect(await reapAll()).toBe(0);
  });
});
