import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../runtime/config.js';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { startNode, type RunningNode } from '../runtime/start.js';
import { monoMs, userId, type ClientStats } from './ipc.js';
import { LoadGenerator } from './load-generator.js';
import { startRelay } from './relay.js';
import { loadMeter, monoNs, paced, quiesce, type Load } from './stats.js';

/**
 * Sections b and c: a node started in this process, its users' PCs and phones on real WebSockets in the
 * load-generator child, messages entering through the in-process entry (`ingress.accept`, which includes the
 * group-committed disk append) or through POST /v1/messages sent by the child.
 */

export interface E2eOptions {
  users: number;
  /** Messages of each max-rate phase, and how many may be accepted but not yet received. */
  maxCount: number;
  window: number;
  /** Offered loads (msgs/s) of the fixed-load phases, and how long each runs. */
  loads: number[];
  loadMs: number;
  /** Open HTTP requests in the max-rate HTTP phase. */
  httpConcurrency: number;
  /** Set on a max phase's unmeasured warm-up: its message ids get their own prefix (no `duplicate` answers later). */
  warm?: boolean;
}

export interface PhaseResult {
  entry: 'in-process' | 'http' | 'http-batch';
  /** What ran it: the node, or a bare relay of bench/relay.ts (`relay`, `relay-corked`, `relay-durable`). */
  target: 'node' | 'relay' | 'relay-corked' | 'relay-durable';
  /** Offered msgs/s, or undefined for the max-rate phase. */
  offered?: number;
  sent: number;
  errors: number;
  /** Received msgs/s: receipts over first send to last receipt. */
  rate: number;
  stats: ClientStats;
  /** The node's process during the phase: CPU (all threads) and main-thread event-loop utilisation, %. */
  nodeLoad: Load;
  /**
   * Set (always `true`) on the node's single-message HTTP max phases (`entry` 'http', `target` 'node') run beside the
   * batch phases (they alternate, see `runEndToEnd`): their mean `rate` (msgs/s) is the baseline of
   * `batch_vs_single_rate`, and they are kept out of `embedded_http_vs_relay` (whose node runs alternate with the
   * relay's). The pair ratios logged for them are CPU per message, batch over single.
   */
  batchBaseline?: true;
  /**
   * Set on the node's single-message HTTP max phases that alternate with the durable relay's (`relay-durable`): the
   * baseline of the context line `embedded_http_vs_durable_relay`, kept out of the goal's pairs like `batchBaseline`.
   */
  durableBaseline?: true;
}

export interface E2eResult {
  connectMs: number;
  sockets: number;
  phases: PhaseResult[];
  /** Route split of the warm-up round (one message per user): half pc, half mobile when presence works. */
  warmup: ClientStats;
}

/** The bench's message `seq` of a phase: id `<phase>-<seq>`, users in turn, the send time in `data.t` (ns, monotonic). */
export function message(phase: string, seq: number, users: number) {
  return { id: `${phase}-${seq}`, to: userId(seq % users), data: { t: monoNs() }, acceptedAt: Date.now() };
}

/** An in-process entry: takes a message, calls `failed` if it was refused (the node's durable accept, or a relay). */
export type Entry = (msg: ReturnType<typeof message>, failed: () => void) => void;

/** The node's in-process entry (`RunningNode.ingress.accept`, the durable accept), as an `Entry`. */
export const nodeEntry = (node: Pick<RunningNode, 'ingress'>): Entry => (msg, failed) => {
  node.ingress.accept(msg).then((r) => r === 'accepted' || failed(), failed);
};

/**
 * Every max-rate phase, the node's and the bare relays' alike, first runs this share of its messages unmeasured at
 * max rate: a quick phase (20,000 messages) lasts under a second, and measured cold it mostly times the JIT's tiers
 * and the first growth of maps and buffers (the same code measured again ran 30-40% cheaper per message, the relays
 * more than the node). The measured phase then shows the steady state (JMH-style warm-up iterations).
 */
const WARM_SHARE = 0.5;

/** A max-rate phase after its unmeasured warm-up (WARM_SHARE of its messages, same window). */
async function warmed(o: E2eOptions, phase: (o: E2eOptions) => Promise<PhaseResult>): Promise<PhaseResult> {
  await phase({ ...o, maxCount: Math.max(1, Math.round(o.maxCount * WARM_SHARE)), warm: true });
  return phase(o);
}

/**
 * Max phases run in this process so far: part of every max phase's message ids, so a phase run again (`alternate` runs
 * each measured phase four times) never sends an id the node has seen (it would answer `duplicate` and deliver nothing).
 */
let maxPhases = 0;

/** In-process entry at max rate: a window of accepted-but-not-received messages, refilled on every progress report. */
export async function inProcessMax(entry: Entry, gen: LoadGenerator, o: E2eOptions, target: PhaseResult['target'] = 'node'): Promise<PhaseResult> {
  await gen.reset();
  const load = loadMeter();
  let sent = 0;
  let errors = 0;
  const failed = (): void => void errors++;
  const start = monoMs();
  const phase = `${o.warm ? 'ipwarm' : 'ipmax'}${++maxPhases}`;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (sent < o.maxCount && sent - gen.received < o.window) {
        entry(message(phase, sent++, o.users), failed);
      }
      if (sent >= o.maxCount) resolve();
    };
    gen.onProgress = pump;
    pump();
  });
  gen.onProgress = undefined;
  await gen.waitReceived(sent - errors, 30_000);
  const nodeLoad = load();
  nodeLoad.cpuUs += await quiesce();
  const stats = await gen.stats();
  return { nodeLoad, entry: 'in-process', target, sent, errors, rate: stats.received / ((stats.lastAtMs - start) / 1000), stats };
}

/** The in-process entry at `rate` msgs/s for `o.loadMs` ms (row b at 1k, 5k, 10k); every run has ids of its own. */
export async function inProcessPaced(entry: Entry, gen: LoadGenerator, o: E2eOptions, rate: number, target: PhaseResult['target'] = 'node'): Promise<PhaseResult> {
  await gen.reset();
  const load = loadMeter();
  let errors = 0;
  let seq = 0;
  const failed = (): void => void errors++;
  const start = monoMs();
  const phase = `ip${rate}-${++maxPhases}`;
  const sent = await paced(rate, o.loadMs, () => entry(message(phase, seq++, o.users), failed));
  await gen.waitReceived(sent - errors, 30_000);
  const nodeLoad = load();
  nodeLoad.cpuUs += await quiesce();
  const stats = await gen.stats();
  return { nodeLoad, entry: 'in-process', target, offered: rate, sent, errors, rate: stats.received / ((stats.lastAtMs - start) / 1000), stats };
}

/**
 * An HTTP phase sent by the load generator: at max rate (`rate` undefined; `POST /v1/messages` over
 * `o.httpConcurrency` sockets, or `/v1/messages/batch` of `batch` messages over an eighth of them) or paced at `rate`.
 */
export async function http(gen: LoadGenerator, o: E2eOptions, rate?: number, target: PhaseResult['target'] = 'node', batch?: number): Promise<PhaseResult> {
  await gen.reset();
  const load = loadMeter();
  const done = gen.reply('http_done');
  if (rate === undefined) gen.send({ type: 'http_max', phase: (batch ? 'bmax' : 'hmax') + (o.warm ? 'warm' : '') + ++maxPhases, count: o.maxCount, window: o.window, concurrency: batch ? Math.max(4, o.httpConcurrency / 8) : o.httpConcurrency, batch });
  else gen.send({ type: 'http_paced', phase: `h${rate}`, rate, durationMs: o.loadMs });
  const out = await done;
  await gen.waitReceived(out.sent - out.errors, 30_000);
  const nodeLoad = load();
  nodeLoad.cpuUs += await quiesce();
  const stats = await gen.stats();
  const secs = (stats.lastAtMs - out.firstSendMs) / 1000;
  return { nodeLoad, entry: batch ? 'http-batch' : 'http', target, offered: rate, sent: out.sent, errors: out.errors, rate: stats.received / secs, stats };
}

/** Messages per batch request in the batch row (PROTOCOL.md allows 1-500). */
export const BATCH_SIZE = 100;

/** Whether the node serves POST /v1/messages/batch: an empty batch is refused (400), an unknown path is 404. */
async function hasBatchEndpoint(node: RunningNode): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${node.port}/v1/messages/batch`, {
    method: 'POST', headers: { authorization: `Bearer ${node.apiKey}`, 'content-type': 'application/json' }, body: '{"messages":[]}',
  });
  await res.arrayBuffer();
  return res.status !== 404 && res.status !== 405;
}

/** A bare relay of bench/relay.ts in this process with its own load generator (the same clients as the node's). */
interface RelayBench {
  relay: Awaited<ReturnType<typeof startRelay>>;
  gen: LoadGenerator;
  entry: Entry;
}

async function startRelayBench(o: E2eOptions, durableFile: string): Promise<RelayBench> {
  const relay = await startRelay(durableFile);
  try {
    const { gen } = await LoadGenerator.start({ port: relay.port, jwtSecret: 'relay-does-not-verify', apiKey: 'none', users: o.users });
    try {
      const entry: Entry = (msg, failed) => void (relay.accept(msg) || failed());
      await gen.reset();
      for (let i = 0; i < o.users; i++) entry(message('warm', i, o.users), () => undefined);
      if (!(await gen.waitReceived(o.users, 30_000))) throw new Error(`relay warm-up: only ${gen.received}/${o.users} received`);
      return { relay, gen, entry };
    } catch (e) {
      await gen.stop().catch(() => undefined);
      throw e;
    }
  } catch (e) {
    await relay.close();
    throw e;
  }
}

/** Least time each side's unmeasured warm-up runs before the first measured phase of `alternate`, ms. */
const ALTERNATE_WARM_MS = 1500;
/**
 * Least time one measured phase of `alternate` lasts, s: a phase gets at least its side's warm-up rate times this many
 * messages. 20,000 messages took the bare relay 0.3 s, a handful of scavenges, and one pair's ratio then moved
 * 1.33-3.09 within one run on this round's VM.
 */
const ALTERNATE_PHASE_S = 1.5;

/**
 * Runs a relay's max phase and the node's counterpart four times each in the order relay, node, node, relay, node,
 * relay, relay, node (ABBA then BAAB), after warm-ups of at least ALTERNATE_WARM_MS each, each measured phase long
 * enough to last ALTERNATE_PHASE_S at its side's warm-up rate. Both servers are alive in this process the whole time
 * and every phase ends quiet (`quiesce`), so a drift of the machine's speed (this 2-core VM's neighbours come and go:
 * the same node phase measured a minute apart moved 87 -> 122 µs/msg) weighs on both sides alike, as does a first
 * measured run that is still dearer than the later ones. Logs each pair's ratio.
 */
async function alternate(o: E2eOptions, relay: (w: E2eOptions) => Promise<PhaseResult>, node: (w: E2eOptions) => Promise<PhaseResult>, note: (p: PhaseResult) => void, progress: (line: string) => void, label = 'node/relay CPU per message'): Promise<void> {
  const warm = { ...o, maxCount: Math.max(1, Math.round(o.maxCount * WARM_SHARE)), warm: true };
  const measured = new Map<typeof relay, E2eOptions>();
  for (const side of [relay, node]) {
    const until = performance.now() + ALTERNATE_WARM_MS;
    let rate = 0;
    do rate = (await side(warm)).rate; while (performance.now() < until);
    measured.set(side, { ...o, maxCount: Math.max(o.maxCount, Math.round((Number.isFinite(rate) ? rate : 0) * ALTERNATE_PHASE_S)) });
  }
  const runs: PhaseResult[] = [];
  for (const run of [relay, node, node, relay, node, relay, relay, node]) {
    const p = await run(measured.get(run)!);
    runs.push(p);
    note(p);
  }
  const pairs = [[0, 1], [3, 2], [5, 4], [6, 7]].map(([r, n]) => cpuPerMsg(runs[n]) / cpuPerMsg(runs[r]));
  progress(`  ${label}, pair by pair: ${pairs.map((x) => x.toFixed(2)).join(', ')} (${runs.map((p) => p.sent).join('/')} messages per run)`);
}

/**
 * CPU µs of this process per message received in a phase, its tail included (`quiesce`): the baseline unit of the
 * `embedded_*_vs_relay` goals. Time over messages, not a % over one span divided by a rate over another.
 */
export function cpuPerMsg(p: PhaseResult): number {
  return p.nodeLoad.cpuUs / p.stats.received;
}

/** CPU used on the machine by processes other than the node and the load generator, % of one core. */
export function othersPct(p: PhaseResult): number {
  return Math.max(0, p.nodeLoad.machinePct - p.nodeLoad.cpuPct - p.stats.load.cpuPct);
}

/**
 * Rows r, b and c in one go: the bare relays (bench/relay.ts, their CPU per message the baseline of the node's) and
 * the node, each with its own load generator, alive together. Max phases alternate with the relay's (`alternate`); with
 * `pacedAt` (msgs/s) the in-process relay also runs paced at that load, bare and durable: their p99s are what this
 * machine and these clients give a relay that does nothing but write and read the sockets, and one that also makes
 * each message durable first (section 3), the floors under the node's p99 there.
 */
export async function runEndToEnd(o: E2eOptions, progress: (line: string) => void, pacedAt?: number): Promise<E2eResult> {
  const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-bench-'));
  const config = parseConfig({
    SWITCHBOARD_PORT: '0',
    SWITCHBOARD_DATA_DIR: dataDir,
    SWITCHBOARD_LOG_LEVEL: 'warn',
    SWITCHBOARD_NODE_ID: 'bench-node',
  });
  const node = await startNode(config, { log: createLogger('warn'), metrics: new Metrics() });
  let gen: LoadGenerator | undefined;
  let rb: RelayBench | undefined;
  try {
    rb = await startRelayBench(o, join(dataDir, 'relay-durable.log'));
    const { relay, entry: relayEntry, gen: relayGen } = rb;
    const started = await LoadGenerator.start({ port: node.port, jwtSecret: node.jwtSecret, apiKey: node.apiKey, users: o.users });
    const g = started.gen;
    gen = g;
    progress(`  ${started.ready.sockets} sockets connected in ${Math.round(started.ready.connectMs)} ms`);

    // Warm-up, and the check that presence took effect: one message per user, half must reach a PC.
    await gen.reset();
    for (let i = 0; i < o.users; i++) void node.ingress.accept(message('warm', i, o.users));
    if (!(await gen.waitReceived(o.users, 30_000))) progress(`  warm-up: only ${gen.received}/${o.users} received`);
    const warmup = await gen.stats();
    progress(`  warm-up route split: pc ${warmup.byKind.pc}, mobile ${warmup.byKind.mobile}, misrouted ${warmup.misrouted}`);

    const phases: PhaseResult[] = [];
    const note = (p: PhaseResult) => {
      phases.push(p);
      progress(`  ${p.target} ${p.entry} ${p.offered ?? 'max'}: ${Math.round(p.rate)} msgs/s, CPU ${cpuPerMsg(p).toFixed(1)} µs/msg, p50 ${p.stats.latency.p50Ms.toFixed(2)} ms, p99 ${p.stats.latency.p99Ms.toFixed(2)} ms, received ${p.stats.received}/${p.sent}, errors ${p.errors}, dupes ${p.stats.duplicates}, node cpu ${Math.round(p.nodeLoad.cpuPct)}% elu ${Math.round(p.nodeLoad.eluPct)}%, loadgen cpu ${Math.round(p.stats.load.cpuPct)}% elu ${Math.round(p.stats.load.eluPct)}%, others ${Math.round(othersPct(p))}%, node stalls p99/max ${p.nodeLoad.loopDelayP99Ms.toFixed(1)}/${p.nodeLoad.loopDelayMaxMs.toFixed(1)} ms, loadgen ${p.stats.load.loopDelayP99Ms.toFixed(1)}/${p.stats.load.loopDelayMaxMs.toFixed(1)} ms, full GCs node ${p.nodeLoad.fullGcs} (${p.nodeLoad.fullGcMs.toFixed(0)} ms) loadgen ${p.stats.load.fullGcs}`);
    };
    await alternate(o, (w) => inProcessMax(relayEntry, relayGen, w, 'relay'), (w) => inProcessMax(nodeEntry(node), g, w), note, progress);
    relay.corked = true;
    note(await warmed(o, (w) => inProcessMax(relayEntry, relayGen, w, 'relay-corked')));
    relay.corked = false;
    if (pacedAt !== undefined) {
      note(await inProcessPaced(relayEntry, relayGen, o, pacedAt, 'relay'));
      // The same with each message durable before it goes out (bench/relay.ts `durable`): the floor the contract's
      // 202 (section 3) and this disk's write + sync put under the node's p99 at that load.
      relay.durable = true;
      try {
        note(await inProcessPaced(relayEntry, relayGen, o, pacedAt, 'relay-durable'));
      } finally {
        relay.durable = false;
      }
    }
    for (const rate of o.loads) note(await inProcessPaced(nodeEntry(node), gen, o, rate));
    await alternate(o, (w) => http(relayGen, w, undefined, 'relay'), (w) => http(g, w), note, progress);
    // Context for the goal above: the same, against the relay that makes each body durable before its 202 (the
    // contract's 202, section 3), the node's runs alternating with it flagged `durableBaseline`.
    const durableRelay = async (w: E2eOptions): Promise<PhaseResult> => {
      relay.durable = true;
      try {
        return await http(relayGen, w, undefined, 'relay-durable');
      } finally {
        relay.durable = false;
      }
    };
    const nodeBeside = async (w: E2eOptions): Promise<PhaseResult> => ({ ...(await http(g, w)), durableBaseline: true });
    await alternate(o, durableRelay, nodeBeside, note, progress, 'node/durable relay CPU per message');
    for (const rate of o.loads) note(await http(gen, o, rate));
    // POST /v1/messages/batch, measured only once the node answers it. Its runs alternate with single-message runs
    // (ABBA then BAAB, as the relays' do) and `batch_vs_single_rate` compares those: measured once after everything
    // else, a batch run met whatever speed the VM had drifted to by then (2.43 and 3.10 five minutes apart on one
    // build; bench/README.md, "A seventh VM").
    if (await hasBatchEndpoint(node)) {
      const single = async (w: E2eOptions): Promise<PhaseResult> => ({ ...(await http(g, w)), batchBaseline: true });
      // The pair ratio `alternate` logs is CPU per message, batch over single: the other side of the rate ratio.
      await alternate(o, single, (w) => http(g, w, undefined, 'node', BATCH_SIZE), note, progress, 'batch/single CPU per message');
    } else progress('  POST /v1/messages/batch: not served by this node, skipped');
    return { connectMs: started.ready.connectMs, sockets: started.ready.sockets, phases, warmup };
  } finally {
    // Each one whatever the others do: a relay or node left running would skew the sections after this one.
    for (const stop of [() => gen?.stop(), () => rb?.gen.stop(), () => rb?.relay.close(), () => node.stop(), () => rm(dataDir, { recursive: true, force: true })]) {
      await Promise.resolve().then(stop).catch((e: unknown) => progress(`  cleanup failed: ${String(e)}`));
    }
  }
}
