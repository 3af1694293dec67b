import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BATCH_SIZE, cpuPerMsg, http, inProcessMax, inProcessPaced, message, nodeEntry, type E2eOptions } from './end-to-end.js';
import { LoadGenerator } from './load-generator.js';
import type * as ConfigModule from '../runtime/config.js';
import type * as LoggerModule from '../base/logger.js';
import type * as MetricsModule from '../base/metrics.js';
import type * as StartModule from '../runtime/start.js';

/**
 * `node dist/bench/side-by-side.js --a <dist dir> --b <dist dir> [--mode in-process|http|batch|paced] [--rounds N]
 * [--count N] [--rate N] [--users N]`: two builds of the node (two `dist` folders, e.g. a copy of main's and the
 * change's) in one process, each with its own load generator (this build's `bench/clients.ts`), their phases
 * alternating A B B A, then B A A B, and so on: max-rate phases of `--count` messages, or with `--mode paced` the
 * in-process entry at `--rate` msgs/s (default 10,000) for `--count` messages (the bench's row b at 10k, where the
 * node's cost per message is 2-3x its cost at max). Prints each side's process CPU µs per message, phase by phase, and
 * B over A; paced, also each phase's p99 send to receive.
 *
 * What it is for: a change worth a few percent of the node's CPU cannot be seen in two bench runs minutes apart on a
 * VM whose speed drifts 2x within minutes (bench/README.md, "A seventh VM"); side by side, with phases alternating,
 * the drift weighs on both builds alike. The same build on both sides reads ~1.00 +- a few percent: that spread is the
 * noise a result must clear. Each node gets its own temp data dir (removed at the end), port 0 and log level warn.
 * The builds must keep the exports used here (`runtime/start.js` `startNode`, `runtime/config.js` `parseConfig`,
 * `base/logger.js` `createLogger`, `base/metrics.js` `Metrics`); the harness and its phases (bench/end-to-end.ts's
 * own), not the measured code, are this build's.
 */

type Mode = 'in-process' | 'http' | 'batch' | 'paced';

interface Side {
  name: 'A' | 'B';
  /** Runs one phase of `count` messages (end-to-end.ts's own phases): process CPU µs per message received, and the p99 send to receive, ms. */
  phase(count: number): Promise<{ cpu: number; p99Ms: number }>;
  stop(): Promise<void>;
}

/** Messages in flight at most and open requests, as in `npm run bench -- --quick` (end-to-end.ts: rows b and c). */
const WINDOW = 1000;
const HTTP_CONCURRENCY = 64;

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function importFrom<T>(dist: string, file: string): Promise<T> {
  return (await import(pathToFileURL(join(dist, file)).href)) as T;
}

async function startSide(name: Side['name'], dist: string, mode: Mode, users: number, rate: number): Promise<Side> {
  const { parseConfig } = await importFrom<typeof ConfigModule>(dist, 'runtime/config.js');
  const { createLogger } = await importFrom<typeof LoggerModule>(dist, 'base/logger.js');
  const { Metrics } = await importFrom<typeof MetricsModule>(dist, 'base/metrics.js');
  const { startNode } = await importFrom<typeof StartModule>(dist, 'runtime/start.js');
  const dataDir = await mkdtemp(join(tmpdir(), `switchboard-side-${name}-`));
  const stops: (() => Promise<unknown>)[] = [() => rm(dataDir, { recursive: true, force: true })];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const config = parseConfig({ SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_LOG_LEVEL: 'warn', SWITCHBOARD_NODE_ID: `side-${name}` });
    const node = await startNode(config, { log: createLogger('warn'), metrics: new Metrics() });
    stops.push(() => node.stop());
    const { gen } = await LoadGenerator.start({ port: node.port, jwtSecret: node.jwtSecret, apiKey: node.apiKey, users });
    stops.push(() => gen.stop());
    const entry = nodeEntry(node);
    await gen.reset();
    for (let i = 0; i < users; i++) entry(message(`warm${name}`, i, users), () => undefined);
    if (!(await gen.waitReceived(users, 30_000))) throw new Error(`side ${name}: the warm-up round did not arrive`);
    return {
      name,
      async phase(count) {
        const o: E2eOptions = { users, maxCount: count, window: WINDOW, loads: [], loadMs: (count / rate) * 1000, httpConcurrency: HTTP_CONCURRENCY };
        const p = mode === 'paced' ? await inProcessPaced(entry, gen, o, rate)
          : mode === 'in-process' ? await inProcessMax(entry, gen, o)
            : await http(gen, o, undefined, 'node', mode === 'batch' ? BATCH_SIZE : undefined);
        if (p.stats.received < p.sent - p.errors) throw new Error(`side ${name}: ${p.stats.received}/${p.sent - p.errors} received`);
        return { cpu: cpuPerMsg(p), p99Ms: p.stats.latency.p99Ms };
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function main(): Promise<void> {
  const a = flag('--a');
  const b = flag('--b');
  if (a === undefined || b === undefined) throw new Error('usage: side-by-side --a <dist dir> --b <dist dir> [--mode in-process|http|batch|paced] [--rounds N] [--count N] [--rate N] [--users N]');
  const mode = (flag('--mode') ?? 'in-process') as Mode;
  if (!['in-process', 'http', 'batch', 'paced'].includes(mode)) throw new Error(`--mode: in-process, http, batch or paced, not ${mode}`);
  const rate = Number(flag('--rate') ?? 10_000);
  const rounds = Number(flag('--rounds') ?? 4);
  const count = Number(flag('--count') ?? (mode === 'http' ? 10_000 : mode === 'paced' ? 2 * rate : 30_000));
  const users = Number(flag('--users') ?? 500);
  const sides: Side[] = [];
  try {
    sides.push(await startSide('A', resolve(a), mode, users, rate));
    sides.push(await startSide('B', resolve(b), mode, users, rate));
    const [A, B] = sides;
    for (const s of [A, B, A, B]) await s.phase(count); // warm-up: the JIT's tiers and the tables' first growth
    const cpu: Record<Side['name'], number[]> = { A: [], B: [] };
    const p99: Record<Side['name'], number[]> = { A: [], B: [] };
    for (let r = 0; r < rounds; r++) {
      for (const s of r % 2 === 0 ? [A, B, B, A] : [B, A, A, B]) {
        const result = await s.phase(count);
        cpu[s.name].push(result.cpu);
        p99[s.name].push(result.p99Ms);
      }
    }
    const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
    const line = (n: Side['name']) => `${n} ${mean(cpu[n]).toFixed(1)} µs/msg (${cpu[n].map((x) => x.toFixed(1)).join(' ')})`;
    process.stdout.write(`${mode}, ${count} messages per phase, ${2 * rounds} phases each: ${line('A')}; ${line('B')}; B/A ${(mean(cpu.B) / mean(cpu.A)).toFixed(3)}\n`);
    // At a paced load the latency is the figure (the goal at 10k msgs/s is a p99); at max rate it is the window's.
    if (mode === 'paced') process.stdout.write(`p99 ms per phase: A ${p99.A.map((x) => x.toFixed(2)).join(' ')}; B ${p99.B.map((x) => x.toFixed(2)).join(' ')}\n`);
  } finally {
    for (const s of sides) await s.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
