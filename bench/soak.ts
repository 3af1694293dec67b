import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { killAll, startNode, type NodeProc } from './cluster-procs.js';
import { SoakClients } from './soak-clients.js';
import { fmt, markdownTable, sleep, verdict } from './stats.js';

/**
 * The soak (issue 8, benchmark): one embedded node in a child process, N users each with a PC and a phone, messages
 * at a fixed rate through POST /v1/messages for a long time, PC presence churned and sockets cut at random. It
 * counts every message: accepted (202), delivered (received by a client at least once), lost (accepted, never
 * received), duplicated (received more than once), and samples the node's RSS and heap over time.
 *
 * `node dist/bench/soak.js [--minutes 5] [--rate 1000] [--users 1000] [--churn 50] [--disconnects 5] [--json]`
 * prints a markdown table (or the report as JSON with `--json`, as test/soak.int.test.ts reads it).
 */

export interface SoakOptions {
  durationMs: number;
  /** POST /v1/messages per second (open loop). */
  rate: number;
  users: number;
  /** PC presence flips per second. */
  churnPerSec: number;
  /** Sockets cut per second (terminated without a close frame), each reconnecting after `reconnectMs`. */
  disconnectsPerSec: number;
  reconnectMs?: number;
  sampleEveryMs?: number;
  /** Requests awaiting an answer at most; a message due while this many wait is skipped (the node is behind). Default 256. */
  maxInFlight?: number;
  /** Extra SWITCHBOARD_* variables for the node. */
  env?: Record<string, string>;
  progress?: (line: string) => void;
}

export interface SoakSample {
  atS: number;
  accepted: number;
  delivered: number;
  rssMiB: number;
  /** JS heap in use (`heapUsed`). */
  heapMiB: number;
  /** JS heap committed by V8 (`heapTotal`): part of RSS, up to several times `heapMiB` between full GCs. */
  heapTotalMiB: number;
  /** Memory of C++ objects tied to JS ones, Buffers and ArrayBuffers included (`external`). */
  externalMiB: number;
  openSockets: number;
}

export interface SoakReport {
  /** Messages due at the fixed rate. */
  offered: number;
  /** Due while `maxInFlight` requests were waiting for an answer, so not sent: the node was behind the rate. */
  skipped: number;
  sent: number;
  accepted: number;
  /** Answers other than 202 (503 while not ready, connection errors). */
  refused: number;
  /** `refused` by HTTP status (`error <code>` for a failed request). */
  refusedBy: Record<string, number>;
  delivered: number;
  lost: number;
  /** Lost messages whose user had a socket cut within `nearMs` of the send (both clients may have been away). */
  lostNearDisconnect: number;
  /** Lost messages whose user had no socket cut around the send: both clients were connected all along. */
  lostReachable: number;
  duplicated: number;
  forcedDisconnects: number;
  closes: Record<string, number>;
  samples: SoakSample[];
  /** A few lost ids with their user, for a report. */
  lostExamples: { id: string; user: string }[];
}

const ACK_TIMEOUT_MS = 2000;

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const log = o.progress ?? (() => undefined);
  const apiKey = randomBytes(24).toString('base64url');
  const jwtSecret = randomBytes(32).toString('base64url');
  let node: NodeProc | undefined;
  let clients: SoakClients | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  try {
    node = await startNode('soak', { SWITCHBOARD_API_KEY: apiKey, SWITCHBOARD_JWT_SECRET: jwtSecret, SWITCHBOARD_LOG_LEVEL: 'info', SWITCHBOARD_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS), ...o.env });
    const port = node.port;
    const users = Array.from({ length: o.users }, (_, i) => `soak-u${i}`);
    clients = new SoakClients(`ws://127.0.0.1:${port}/v1/ws`, jwtSecret, users, o.reconnectMs ?? 500);
    await clients.connectAll();
    for (let i = 0; clients.openSockets() < users.length * 2; i++) {
      if (i > 500) throw new Error(`only ${clients.openSockets()} of ${users.length * 2} sockets welcomed`);
      await sleep(10);
    }
    log(`soak: ${users.length} users, ${users.length * 2} sockets; ${o.rate} msgs/s for ${o.durationMs / 1000} s`);

    const accepted = new Map<string, { user: string; at: number }>();
    let sent = 0;
    let refused = 0;
    const refusedBy: Record<string, number> = {};
    const refuse = (why: string): void => {
      refused++;
      refusedBy[why] = (refusedBy[why] ?? 0) + 1;
    };
    let answering = 0;
    let offered = 0;
    let skipped = 0;
    const maxInFlight = o.maxInFlight ?? 256;
    const post = (): void => {
      offered++;
      if (answering >= maxInFlight) return void skipped++;
      answering++;
      const seq = sent++;
      const user = users[seq % users.length];
      const id = `soak-${seq}`;
      const at = Date.now();
      const body = JSON.stringify({ id, to: user, text: `soak ${seq}` });
      const req = request({ agent, host: '127.0.0.1', port, method: 'POST', path: '/v1/messages', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' } }, (res) => {
        if (res.statusCode === 202) accepted.set(id, { user, at });
        else refuse(String(res.statusCode));
        res.resume();
        answering--;
      });
      // A failed request names its cause (e.g. `error ECONNRESET`: a keep-alive socket the node closed as it was reused).
      req.on('error', (e: NodeJS.ErrnoException) => (refuse(`error ${e.code ?? e.message}`), answering--));
      req.end(body);
    };

    const samples: SoakSample[] = [];
    const started = Date.now();
    const delivered = () => [...accepted.keys()].filter((id) => clients!.received.has(id)).length;
    const sample = async (): Promise<void> => {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => '');
      const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? NaN);
      const s = { atS: Math.round((Date.now() - started) / 1000), accepted: accepted.size, delivered: delivered(), rssMiB: metric('process_resident_memory_bytes') / 2 ** 20, heapMiB: metric('nodejs_heap_size_used_bytes') / 2 ** 20, heapTotalMiB: metric('nodejs_heap_size_total_bytes') / 2 ** 20, externalMiB: metric('nodejs_external_memory_bytes') / 2 ** 20, openSockets: clients!.openSockets() };
      samples.push(s);
      log(`soak: ${s.atS} s accepted ${s.accepted} delivered ${s.delivered} rss ${fmt(s.rssMiB, 1)} MiB heap ${fmt(s.heapMiB, 1)} / ${fmt(s.heapTotalMiB, 1)} MiB external ${fmt(s.externalMiB, 1)} MiB sockets ${s.openSockets}`);
    };

    // Open loop: messages, churn and cuts each at their own fixed rate, ticked every 10 ms.
    const due = (perSec: number, elapsedMs: number) => Math.floor((perSec * elapsedMs) / 1000);
    let churned = 0;
    let cut = 0;
    let nextSample = 0;
    for (let elapsed = 0; elapsed < o.durationMs; elapsed = Date.now() - started) {
      while (offered < due(o.rate, elapsed)) post();
      while (churned < due(o.churnPerSec, elapsed)) churned++, clients.churnOne();
      while (cut < due(o.disconnectsPerSec, elapsed)) cut++, clients.disconnectOne();
      if (elapsed >= nextSample) {
        nextSample += o.sampleEveryMs ?? 10_000;
        void sample();
      }
      await sleep(10);
    }
    for (let i = 0; answering > 0 && i < 300; i++) await sleep(100); // every request answered
    // Drain: until every accepted message arrived, or nothing arrived for two ack timeouts plus the reconnect.
    let last = -1;
    for (let quiet = 0; quiet < 2 * ACK_TIMEOUT_MS + 2000; quiet = delivered() === last ? quiet + 100 : 0) {
      if ((last = delivered()) === accepted.size) break;
      await sleep(100);
    }
    await sample();

    const nearMs = ACK_TIMEOUT_MS + (o.reconnectMs ?? 500) + 1000;
    const lostIds = [...accepted.entries()].filter(([id]) => !clients!.received.has(id));
    const nearCut = ([, m]: [string, { user: string; at: number }]) => (clients!.disconnectsAt.get(m.user) ?? []).some((t) => Math.abs(t - m.at) <= nearMs);
    const lostNearDisconnect = lostIds.filter(nearCut).length;
    return {
      offered, skipped, sent, accepted: accepted.size, refused, refusedBy: { ...refusedBy }, delivered: delivered(), lost: lostIds.length, lostNearDisconnect,
      lostReachable: lostIds.length - lostNearDisconnect,
      duplicated: [...clients.received.entries()].filter(([id, n]) => n > 1 && accepted.has(id)).length,
      forcedDisconnects: clients.forcedDisconnects, closes: { ...clients.closes }, samples,
      lostExamples: lostIds.slice(0, 5).map(([id, m]) => ({ id, user: m.user })),
    };
  } finally {
    clients?.close();
    agent.destroy();
    await killAll();
  }
}

/** The soak's figures as the markdown the benchmarks print. */
export function soakTable(o: SoakOptions, r: SoakReport): string {
  const rows = [
    ['accepted (202)', fmt(r.accepted), `${fmt(r.offered)} due at ${fmt(o.rate)}/s for ${fmt(o.durationMs / 1000)} s, ${fmt(r.skipped)} skipped (${o.maxInFlight ?? 256} requests waiting: the node was behind), ${fmt(r.sent)} sent, ${fmt(r.refused)} not accepted ${JSON.stringify(r.refusedBy)}`],
    ['delivered', fmt(r.delivered), 'received by a client at least once'],
    ['lost', fmt(r.lost), `${fmt(r.lostReachable)} of users with both clients connected around the send, ${fmt(r.lostNearDisconnect)} around a forced disconnect`],
    ['duplicated', fmt(r.duplicated), 'received more than once (at least once delivery)'],
    ['forced disconnects', fmt(r.forcedDisconnects), `closes seen by clients ${JSON.stringify(r.closes)}`],
  ].map(([what, value, note]) => ({ section: 'soak', what, value, ratio: '', target: what === 'lost' ? '0' : '', verdict: what === 'lost' ? verdict(r.lost === 0) : '', note }));
  const timeline = ['| s | accepted | delivered | RSS MiB | heap used / committed MiB | external MiB | open sockets |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...r.samples.map((s) => `| ${s.atS} | ${fmt(s.accepted)} | ${fmt(s.delivered)} | ${fmt(s.rssMiB, 1)} | ${fmt(s.heapMiB, 1)} / ${fmt(s.heapTotalMiB, 1)} | ${fmt(s.externalMiB, 1)} | ${s.openSockets} |`)];
  return `${markdownTable(rows)}\n\n${timeline.join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const flag = (name: string, d: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : d);
  const o: SoakOptions = {
    durationMs: flag('--minutes', 5) * 60_000, rate: flag('--rate', 1000), users: flag('--users', 1000),
    churnPerSec: flag('--churn', 50), disconnectsPerSec: flag('--disconnects', 5), sampleEveryMs: flag('--sample-seconds', 10) * 1000,
    progress: (l) => process.stderr.write(`${l}\n`),
  };
  runSoak(o).then((r) => process.stdout.write(args.includes('--json') ? `${JSON.stringify(r)}\n` : soakTable(o, r)), (e) => {
    process.stderr.write(`soak failed: ${e?.stack ?? e}\n`);
    process.exitCode = 1;
  });
}
