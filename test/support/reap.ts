import type { ChildProcess } from 'node:child_process';
import { afterAll } from 'vitest';

/**
 * Every node and nats-server a test process started and that is still running. A test whose `beforeAll` timed out
 * (a cluster that did not settle in time) never got the cluster or server to stop in its `afterAll`: its processes
 * outlived the test file, and a later file's nats-server, given the same free port, took them in. Those strays then
 * held leases in that file's cluster, which then never settled either.
 */
const live = new Set<ChildProcess>();

/** Registers `proc` to be killed (SIGKILL) when the test file ends if it still runs then; returns it. */
export function reaped<T extends ChildProcess>(proc: T): T {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  return proc;
}

/** Kills every registered process still running; resolves once they exited. */
export async function reapAll(): Promise<number> {
  const left = [...live];
  await Promise.all(left.map((p) => new Promise<void>((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  })));
  return left.length;
}

/** For vitest's setupFiles: after each test file's own `afterAll` hooks (hooks run in stack order), reap the rest. */
export function reapAfterEachFile(): void {
  afterAll(async () => {
    const n = await reapAll();
    if (n > 0) process.stderr.write(`reaped ${n} process(es) the test file left running\n`);
  });
}
