import WebSocket from 'ws';
import { signToken } from '../test/support/ws-client.js';
import { HttpSender } from './http-sender.js';
import { monoMs, pcActive, userId, type ClientStats, type ClientsSetup, type FromClients, type ToClients } from './ipc.js';
import { LatencySample, loadMeter, sinceNs } from './stats.js';

/**
 * The load generator, a child process of bench/run.ts so that client work does not run on the node's event loop:
 * every simulated user holds a PC and a phone on real WebSockets, acks every message and times it from the
 * monotonic stamp the sender put in `data.t`. It also sends through POST /v1/messages for the HTTP rows.
 */

const send = (m: FromClients): void => void process.send!(m);

let received = 0;
let reported = -1;
let duplicates = 0;
let misrouted = 0;
let firstAtMs = NaN;
let lastAtMs = NaN;
const byKind = { pc: 0, mobile: 0 };
/** Receipts by message sequence number (the id's tail): a bitmap instead of a Set of strings keeps the GC quiet. */
let seen = new Uint8Array(1 << 16);
const latency = new LatencySample();
const closes: Record<string, number> = {};
const sockets: WebSocket[] = [];
let http: HttpSender | undefined;
let load = loadMeter();

function onMessage(raw: WebSocket.RawData, user: number, kind: 'pc' | 'mobile', ws: WebSocket): void {
  const frame = JSON.parse(raw.toString());
  if (frame.type !== 'message') return;
  // Timed before the ack goes out: the ack's own send is the client's cost, not the delivery's.
  const now = monoMs();
  const latencyNs = typeof frame.data?.t === 'string' ? sinceNs(frame.data.t) : NaN;
  ws.send(`{"type":"ack","id":${JSON.stringify(frame.id)}}`);
  const seq = Number(frame.id.slice(frame.id.lastIndexOf('-') + 1));
  if (seq >= seen.length) {
    const grown = new Uint8Array(Math.max(seen.length * 2, seq + 1));
    grown.set(seen);
    seen = grown;
  }
  if (seen[seq] === 1) {
    duplicates++;
    return;
  }
  seen[seq] = 1;
  received++;
  byKind[kind]++;
  if ((kind === 'pc') !== pcActive(user)) misrouted++;
  if (Number.isNaN(firstAtMs)) firstAtMs = now;
  lastAtMs = now;
  if (!Number.isNaN(latencyNs)) latency.add(latencyNs);
}

async function session(url: string, secret: string, user: number, kind: 'pc' | 'mobile'): Promise<WebSocket> {
  const claims = kind === 'pc'
    ? { sub: userId(user), dev: 'pc1', kind } as const
    : { sub: userId(user), dev: 'phone1', kind, os: 'android' } as const;
  const token = await signToken(secret, claims);
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', token })));
    ws.once('error', reject);
    ws.on('close', (code) => {
      closes[code] = (closes[code] ?? 0) + 1;
      reject(new Error(`closed ${code} before welcome`));
    });
    ws.once('message', (raw) => {
      const f = JSON.parse(raw.toString());
      if (f.type !== 'welcome') return reject(new Error(`no welcome: ${raw.toString()}`));
      resolve();
    });
  });
  ws.on('message', (raw) => onMessage(raw, user, kind, ws));
  // Presence per section 2; a PC with no report yet would already count as inactive, but be explicit.
  const presence = kind === 'mobile'
    ? { type: 'presence', state: 'foreground' }
    : pcActive(user) ? { type: 'presence', state: 'active' } : { type: 'presence', state: 'inactive', reason: 'screen_locked' };
  ws.send(JSON.stringify(presence));
  return ws;
}

async function connect(setup: ClientsSetup): Promise<void> {
  const url = `ws://127.0.0.1:${setup.port}/v1/ws`;
  const started = performance.now();
  const batch = 100;
  for (let i = 0; i < setup.users; i += batch) {
    const opening: Promise<WebSocket>[] = [];
    for (let u = i; u < Math.min(setup.users, i + batch); u++) {
      opening.push(session(url, setup.jwtSecret, u, 'pc'), session(url, setup.jwtSecret, u, 'mobile'));
    }
    sockets.push(...(await Promise.all(opening)));
  }
  http = new HttpSender(setup.port, setup.apiKey, setup.users);
  send({ type: 'ready', sockets: sockets.length, connectMs: performance.now() - started });
}

/** `peek` leaves the load meter running (the reply to a reset is not the end of a phase). */
function stats(peek = false): ClientStats {
  return { received, duplicates, misrouted, byKind: { ...byKind }, latency: latency.summary(), firstAtMs, lastAtMs, closes: { ...closes }, load: load(!peek) };
}

function reset(): void {
  load = loadMeter();
  received = duplicates = misrouted = 0;
  byKind.pc = byKind.mobile = 0;
  firstAtMs = lastAtMs = NaN;
  seen.fill(0);
  latency.clear();
  reported = 0;
}

setInterval(() => {
  if (received !== reported) send({ type: 'progress', received: (reported = received) });
}, 10).unref();

process.on('message', (m: ToClients) => {
  const run = async (): Promise<void> => {
    switch (m.type) {
      case 'connect': return connect(m);
      case 'reset':
        reset();
        return send({ type: 'stats', stats: stats(true) });
      case 'report': return send({ type: 'stats', stats: stats() });
      case 'http_paced': return send({ type: 'http_done', ...(await http!.paced(m.phase, m.rate, m.durationMs)) });
      case 'http_max': return send({ type: 'http_done', ...(await http!.max(m.phase, m.count, m.window, m.concurrency, () => received, m.batch)) });
      case 'exit':
        for (const ws of sockets) ws.terminate();
        http?.close();
        process.exit(0);
    }
  };
  run().catch((e) => send({ type: 'failed', error: String(e?.stack ?? e) }));
});
