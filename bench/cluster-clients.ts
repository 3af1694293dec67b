import WebSocket from 'ws';
import { signToken } from '../test/support/ws-client.js';
import { monoMs, pcActive, userId } from './ipc.js';
import { loadMeter, sinceNs, type Load } from './stats.js';

/**
 * The cluster bench's load generator (a child of bench/cluster.ts): every user holds a PC and a phone on real
 * WebSockets at the gateway the parent chose for it, reports presence (even users PC active, odd ones PC locked and
 * phone in the foreground), acks every message, and records per message sequence number the first receipt time and
 * the send-to-receive latency from the sender's CLOCK_MONOTONIC stamp in `data.t`. The parent reads them per range.
 */

export type ToClusterClients =
  | { type: 'connect'; ports: number[]; gatewayOf: number[]; jwtSecret: string }
  | { type: 'receipts'; from: number; to: number }
  | { type: 'report' }
  | { type: 'exit' };

export interface ClusterClientStats {
  received: number;
  duplicates: number;
  misrouted: number;
  closes: Record<string, number>;
  load: Load;
}

export type FromClusterClients =
  | { type: 'ready'; sockets: number; connectMs: number }
  | { type: 'progress'; received: number }
  /** For seq from..to-1: monotonic ms of the first receipt and latency ms (NaN = not received). */
  | { type: 'receipts'; recvAt: number[]; latencyMs: number[]; fromAcceptMs: number[] }
  | { type: 'stats'; stats: ClusterClientStats }
  | { type: 'failed'; error: string };

const send = (m: FromClusterClients): void => void process.send!(m);
let received = 0;
let reported = -1;
let duplicates = 0;
let misrouted = 0;
let recvAt: Float64Array = new Float64Array(1 << 16).fill(NaN);
let latency: Float64Array = new Float64Array(1 << 16).fill(NaN);
/** Per seq: ms from the node's accept stamp (the frame's `ts`, wall clock) to the receipt: the part after the send listener. */
let fromAccept: Float64Array = new Float64Array(1 << 16).fill(NaN);
const closes: Record<string, number> = {};
const sockets: WebSocket[] = [];
const load = loadMeter();
let exiting = false;

function grow(a: Float64Array, n: number): Float64Array {
  const g = new Float64Array(Math.max(a.length * 2, n + 1)).fill(NaN);
  g.set(a);
  return g;
}

function onMessage(raw: WebSocket.RawData, user: number, kind: 'pc' | 'mobile', ws: WebSocket): void {
  const frame = JSON.parse(raw.toString());
  if (frame.type !== 'message') return;
  const now = monoMs();
  const lat = typeof frame.data?.t === 'string' ? sinceNs(frame.data.t) / 1e6 : NaN;
  ws.send(`{"type":"ack","id":${JSON.stringify(frame.id)}}`);
  const seq = Number(frame.id.slice(frame.id.lastIndexOf('-') + 1));
  if (seq >= recvAt.length) (recvAt = grow(recvAt, seq)), (latency = grow(latency, seq)), (fromAccept = grow(fromAccept, seq));
  if (!Number.isNaN(recvAt[seq])) return void duplicates++;
  recvAt[seq] = now;
  latency[seq] = lat;
  fromAccept[seq] = typeof frame.ts === 'number' ? Date.now() - frame.ts : NaN;
  received++;
  if ((kind === 'pc') !== pcActive(user)) misrouted++;
}

async function session(url: string, secret: string, user: number, kind: 'pc' | 'mobile'): Promise<WebSocket> {
  const claims = kind === 'pc' ? { sub: userId(user), dev: 'pc1', kind } as const : { sub: userId(user), dev: 'phone1', kind, os: 'android' } as const;
  const token = await signToken(secret, claims);
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', token })));
    ws.once('error', reject);
    ws.once('message', (raw) => (JSON.parse(raw.toString()).type === 'welcome' ? resolve() : reject(new Error(`no welcome: ${raw}`))));
  });
  ws.on('error', () => undefined); // a killed gateway resets its sockets; counted in `closes`
  ws.on('close', (code) => (closes[code] = (closes[code] ?? 0) + 1));
  ws.on('message', (raw) => onMessage(raw, user, kind, ws));
  const presence = kind === 'mobile'
    ? { type: 'presence', state: 'foreground' }
    : pcActive(user) ? { type: 'presence', state: 'active' } : { type: 'presence', state: 'inactive', reason: 'screen_locked' };
  ws.send(JSON.stringify(presence));
  return ws;
}

async function connect(m: Extract<ToClusterClients, { type: 'connect' }>): Promise<void> {
  const started = performance.now();
  for (let i = 0; i < m.gatewayOf.length; i += 100) {
    const opening: Promise<WebSocket>[] = [];
    for (let u = i; u < Math.min(m.gatewayOf.length, i + 100); u++) {
      const url = `ws://127.0.0.1:${m.ports[m.gatewayOf[u]]}/v1/ws`;
      opening.push(session(url, m.jwtSecret, u, 'pc'), session(url, m.jwtSecret, u, 'mobile'));
    }
    sockets.push(...(await Promise.all(opening)));
  }
  send({ type: 'ready', sockets: sockets.length, connectMs: performance.now() - started });
}

setInterval(() => {
  if (received !== reported && !exiting) send({ type: 'progress', received: (reported = received) });
}, 10).unref();

process.on('message', (m: ToClusterClients) => {
  const run = async (): Promise<void> => {
    switch (m.type) {
      case 'connect': return connect(m);
      case 'receipts': {
        const at: number[] = [];
        const lat: number[] = [];
        const acc: number[] = [];
        for (let s = m.from; s < m.to; s++) {
          at.push(s < recvAt.length ? recvAt[s] : NaN);
          lat.push(s < latency.length ? latency[s] : NaN);
          acc.push(s < fromAccept.length ? fromAccept[s] : NaN);
        }
        return send({ type: 'receipts', recvAt: at, latencyMs: lat, fromAcceptMs: acc });
      }
      case 'report': return send({ type: 'stats', stats: { received, duplicates, misrouted, closes: { ...closes }, load: load() } });
      case 'exit':
        exiting = true;
        for (const ws of sockets) ws.terminate();
        process.exit(0);
    }
  };
  run().catch((e) => send({ type: 'failed', error: String(e?.stack ?? e) }));
});
process.on('disconnect', () => process.exit(0));
