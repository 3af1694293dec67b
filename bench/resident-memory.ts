import { nextSessionId } from '../gateway/client-session.js';
import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../runtime/config.js';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { startNode } from '../runtime/start.js';
import { sleep } from './stats.js';

/**
 * Section d: heap and RSS per resident user. Runs as a fresh child (`--expose-gc`) so nothing else lives in
 * the heap: a node without sockets, whose router is driven the way the gateway drives it (session_open for a
 * PC and a phone, then the PC's presence), measured after a full GC against the same node before the users.
 */

export interface MemoryJob {
  users: number;
  /** SWITCHBOARD_PASSIVATE_AFTER_MS: long keeps every actor live, short measures the passivated state. */
  passivateAfterMs: number;
}

export interface MemoryResult extends MemoryJob {
  heapPerUser: number;
  rssPerUser: number;
  residentUsers: number;
  liveActors: number;
  fillMs: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<{ heap: number; rss: number }> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await sleep(20);
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}


async function measure(job: MemoryJob): Promise<MemoryResult> {
  if (!gc) throw new Error('run with --expose-gc');
  const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-bench-mem-'));
  const config = parseConfig({
    SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_LOG_LEVEL: 'warn', SWITCHBOARD_NODE_ID: 'bench-node',
    SWITCHBOARD_PASSIVATE_AFTER_MS: String(job.passivateAfterMs),
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const node = await startNode(config, { log: createLogger('warn'), metrics });
  const before = await settle();
  const started = performance.now();
  const node0 = node.nodeId;
  for (let i = 0; i < job.users; i++) {
    // As the gateway builds them: ids parsed from each client's JWT (own strings), session ids from the gateway's own generator.
    const user = `user-${i}`;
    const pc = { device: `${user}-pc`, id: nextSessionId() };
    const phone = { device: `${user}-phone`, id: nextSessionId() };
    const at = Date.now();
    node.router.handle({ type: 'session_open', user, device: pc.device, kind: 'pc', session: { node: node0, id: pc.id }, at });
    node.router.handle({ type: 'session_open', user, device: phone.device, kind: 'mobile', os: 'android', session: { node: node0, id: phone.id }, at });
    node.router.handle(i % 2 === 0
      ? { type: 'presence', user, device: pc.device, sessionId: pc.id, state: 'active', at }
      : { type: 'presence', user, device: pc.device, sessionId: pc.id, state: 'inactive', reason: 'screen_locked', at });
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r)); // let actors drain their mailboxes
  }
  await node.router.drain(600_000);
  const fillMs = performance.now() - started;
  if (job.passivateAfterMs < 60_000) {
    // Passivation: wait out the idle time, then sweep now rather than on the periodic timer.
    await sleep(job.passivateAfterMs + 50);
    await node.router.drain(60_000);
    node.router.sweep();
  }
  const after = await settle();
  const result = {
    ...job, fillMs,
    heapPerUser: (after.heap - before.heap) / job.users,
    rssPerUser: (after.rss - before.rss) / job.users,
    ...node.router.stats,
  };
  await node.stop();
  await rm(dataDir, { recursive: true, force: true });
  return result;
}

/** Runs one job in a fresh child process and returns what it measured. */
export function measureInChild(job: MemoryJob, maxOldSpaceMb: number): Promise<MemoryResult> {
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(job)], {
    execArgv: ['--expose-gc', `--max-old-space-size=${maxOldSpaceMb}`],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { result?: MemoryResult; error?: string }) => (m.result ? resolve(m.result) : reject(new Error(m.error))));
    child.once('exit', (code) => reject(new Error(`memory child exited (${code}) without a result`)));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  measure(JSON.parse(process.argv[2]) as MemoryJob).then(
    (result) => process.send!({ result }, () => process.exit(0)),
    (e) => process.send!({ error: String(e?.stack ?? e) }, () => process.exit(1)),
  );
}
