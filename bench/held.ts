import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UserDirectory } from '../actors/directory.js';
import { systemClock } from '../base/clock.js';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { Subjects } from '../bus/subjects.js';
import type { GatewayMessage } from '../protocol/index.js';
import { FileHeldStore } from '../store/file-held-store.js';
import type { DeviceRegistry } from '../store/types.js';

/**
 * What a held backlog costs (issue 8 part 1), `node --expose-gc dist/bench/held.js [--held N] [--backlog N]`:
 *  A. one user with `backlog` held messages reconnecting (a PC that acks each at once, through the flow-control window),
 *     against the baseline of the same messages routed to a PC already connected;
 *  B. `held` messages held on one node (100 per user): write rate, log size, replay (open) time, memory after replay,
 *     and reading one user's 100 back.
 */

const noRegistry: DeviceRegistry = {
  put: async () => { throw new Error('unused'); },
  remove: async () => false,
  clearToken: async () => false,
  list: async () => [],
  seen: async () => {},
  prune: async () => 0,
  close: async () => {},
};

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

/** Seconds from `start()` to every one of `n` messages acked by one PC, held first (`held`) or routed live. */
export async function reconnect(n: number, held: boolean): Promise<{ seconds: number; held: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-held-'));
  const store = await FileHeldStore.open(dir);
  const bus = new MemoryBus();
  const subjects = new Subjects('sb', 64);
  const settled: string[] = [];
  let acked = 0;
  const router = new UserDirectory({
    nodeId: 'bench', bus, subjects, registry: noRegistry, pushes: { push: async () => ({ outcome: 'ok' }), close: async () => {} },
    clock: systemClock, metrics: new Metrics({ defaultMetrics: false }), log: createLogger('silent'),
    ackTimeoutMs: 60_000, presenceTtlMs: 3_600_000, pushDelayMs: 0, passivateAfterMs: 3_600_000,
    held: store, holdTtlMs: 3_600_000, holdMax: n, maxInflight: 256, done: (id) => settled.push(id),
  });
  // The gateway: every delivery is acked by the client at once.
  bus.subscribe(subjects.gateway('gw'), (m) => {
    const msg = m as GatewayMessage;
    if (msg.type !== 'deliver') return;
    acked++;
    router.handle({ type: 'ack', user: 'u', device: 'pc', sessionId: 's1', id: msg.frame.id, at: Date.now() });
  });
  const connect = (): void => {
    router.handle({ type: 'session_open', user: 'u', device: 'pc', kind: 'pc', session: { node: 'gw', id: 's1' }, at: Date.now() });
    router.handle({ type: 'presence', user: 'u', device: 'pc', sessionId: 's1', state: 'active', at: Date.now() });
  };
  const route = (): void => {
    for (let i = 0; i < n; i++) router.handle({ type: 'route', user: 'u', msg: { id: `m${i}`, to: 'u', title: 'T', text: 'x'.repeat(200), acceptedAt: Date.now() } });
  };
  let started: bigint;
  if (held) {
    route();
    await until(() => settled.length === n);
    started = process.hrtime.bigint();
    connect();
  } else {
    connect();
    started = process.hrtime.bigint();
    route();
  }
  await until(() => acked === n && store.heldTotal === 0);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  router.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
  return { seconds, held: store.heldTotal };
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 4; i++) g?.();
}

/** N held messages (100 per user) written, then the store reopened: replay time and memory. */
export async function millionHeld(n: number): Promise<Record<string, string>> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-1m-'));
  const perUser = 100;
  const text = 'x'.repeat(100);
  const store = await FileHeldStore.open(dir, { compactMinBytes: Number.MAX_SAFE_INTEGER });
  const now = Date.now();
  let next = 0;
  const writer = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const user = `user-${Math.floor(i / perUser)}`;
      await store.hold(user, { msg: { id: `msg-${i}`, to: user, title: 'T', text, acceptedAt: now + i }, expiresAt: now + 3_600_000 });
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 2048 }, writer));
  const writeSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await store.close();
  const bytes = (await stat(join(dir, 'held.log'))).size;

  gc();
  const before = process.memoryUsage();
  const t1 = process.hrtime.bigint();
  const reopened = await FileHeldStore.open(dir, { compactMinBytes: Number.MAX_SAFE_INTEGER });
  const replaySeconds = Number(process.hrtime.bigint() - t1) / 1e9;
  gc();
  const after = process.memoryUsage();
  const t2 = process.hrtime.bigint();
  const one = await reopened.list('user-7', now);
  const listMs = Number(process.hrtime.bigint() - t2) / 1e6;
  if (one.length !== perUser || reopened.heldTotal !== n) throw new Error(`replay lost messages: ${one.length}, ${reopened.heldTotal}`);
  await reopened.close();
  await rm(dir, { recursive: true, force: true });
  return {
    held: n.toLocaleString('en'),
    'writes/s': Math.round(n / writeSeconds).toLocaleString('en'),
    'log size': `${(bytes / 2 ** 20).toFixed(0)} MiB`,
    'replay (open)': `${replaySeconds.toFixed(1)} s`,
    'heap after replay': `${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(0)} MiB (${Math.round((after.heapUsed - before.heapUsed) / n)} B/msg)`,
    'RSS after replay': `${((after.rss - before.rss) / 2 ** 20).toFixed(0)} MiB`,
    'one user\'s 100 read back': `${listMs.toFixed(1)} ms`,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const flag = (name: string, def: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : def);
  const backlog = flag('--backlog', 1000);
  const held = flag('--held', 1_000_000);
  const live = await reconnect(backlog, false);
  const replay = await reconnect(backlog, true);
  console.log(`\nA. one user, ${backlog} messages, a PC acking each (window 256)\n`);
  console.table([
    { case: 'baseline: routed live to a connected PC', seconds: live.seconds.toFixed(3), 'msgs/s': Math.round(backlog / live.seconds) },
    { case: `held, then the PC connects (replay from the held log)`, seconds: replay.seconds.toFixed(3), 'msgs/s': Math.round(backlog / replay.seconds), 'vs baseline': `${(replay.seconds / live.seconds).toFixed(2)}x time` },
  ]);
  console.log(`\nB. ${held.toLocaleString('en')} held messages on one node (100 per user)\n`);
  console.table([await millionHeld(held)]);
}
