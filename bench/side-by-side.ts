import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { userId } from './ipc.js';
import { LoadGenerator } from './load-generator.js';
import { monoNs, paced, quiesce } from './stats.js';
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
 * B over A.
 *
 * What it is for: a change worth a few percent of the node's CPU cannot be seen in two bench runs minutes apart on a
 * VM whose speed drifts 2x within minutes (bench/README.md, "A seventh VM"); side by side, with phases alternating,
 * the drift weighs on both builds alike. The same build on both sides reads ~1.00 +- a few percent: that spread is the
 * noise a result must clear. Each node gets its own temp data dir (removed at the end), port 0 and log level warn.
 * The builds must keep the exports used here (`runtime/start.js` `startNode`, `runtime/config.js` `parseConfig`,
 * `base/logger.js` `createLogger`, `base/metrics.js` `Metrics`); only the A/B harness, not the measured code, is this
 * build's.
 */

type Mode = 'in-process' | 'http' | 'batch' | 'paced';

interface Side {
  name: 'A' | 'B';
  /** Runs one max-rate phase of `count` messages; resolves with process CPU µs per message, its tail included. */
  phase(count: number): Promise<number>;
  stop(): Promise<void>;
}

/** Messages in flight at most (the in-process window and the HTTP sender's), as in `npm run bench -- --quick`. */
const WINDOW = 1000;
/** Open requests of the HTTP sender: single messages, and batches of BATCH_SIZE (bench/end-to-end.ts's row c). */
const HTTP_CONCURRENCY = 64;
const BATCH_CONCURRENCY = 8;
const BATCH_SIZE = 100;

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
  const config = parseConfig({ SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_LOG_LEVEL: 'warn', SWITCHBOARD_NODE_ID: `side-${name}` });
  const node = await startNode(config, { log: createLogger('warn'), metrics: new Metrics() });
  const { gen } = await LoadGenerator.start({ port: node.port, jwtSecret: node.jwtSecret, apiKey: node.apiKey, users }).catch(async (e: unknown) => {
    await node.stop();
    throw e;
  });
  const message = (phase: string, seq: number) => ({ id: `${phase}-${seq}`, to: userId(seq % users), data: { t: monoNs() }, acceptedAt: Date.now() });
  await gen.reset();
  for (let i = 0; i < users; i++) void node.ingress.accept(message('warm', i));
  if (!(await gen.waitReceived(users, 30_000))) throw new Error(`side ${name}: the warm-up round did not arrive`);
  let phases = 0;
  return {
    name,
    async phase(count) {
      const tag = `${name}${++phases}`;
      await gen.reset();
      const start = process.cpuUsage();
      let expected = count;
      if (mode === 'paced') {
        let seq = 0;
        expected = await paced(rate, (count / rate) * 1000, () => void node.ingress.accept(message(tag, seq++)));
      } else if (mode === 'in-process') {
        let sent = 0;
        await new Promise<void>((done) => {
          const pump = (): void => {
            while (sent < count && sent - gen.received < WINDOW) void node.ingress.accept(message(tag, sent++));
            if (sent >= count) done();
          };
          gen.onProgress = pump;
          pump();
        });
        gen.onProgress = undefined;
      } else {
        const batch = mode === 'batch' ? BATCH_SIZE : undefined;
        const reply = gen.reply('http_done');
        gen.send({ type: 'http_max', phase: tag, count, window: WINDOW, concurrency: batch ? BATCH_CONCURRENCY : HTTP_CONCURRENCY, batch });
        const out = await reply;
        expected = out.sent - out.errors;
      }
      if (!(await gen.waitReceived(expected, 60_000))) throw new Error(`side ${name}: ${gen.received}/${expected} received`);
      await quiesce();
      const used = process.cpuUsage(start);
      return (used.user + used.system) / expected;
    },
    async stop() {
      await gen.stop().catch(() => undefined);
      await node.stop().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
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
    for (let r = 0; r < rounds; r++) {
      for (const s of r % 2 === 0 ? [A, B, B, A] : [B, A, A, B]) cpu[s.name].push(await s.phase(count));
    }
    const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
    const line = (n: Side['name']) => `${n} ${mean(cpu[n]).toFixed(1)} µs/msg (${cpu[n].map((x) => x.toFixed(1)).join(' ')})`;
    process.stdout.write(`${mode}, ${count} messages per phase, ${2 * rounds} phases each: ${line('A')}; ${line('B')}; B/A ${(mean(cpu.B) / mean(cpu.A)).toFixed(3)}\n`);
  } finally {
    for (const s of sides) await s.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
