import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import type { FromClusterClients, ToClusterClients, ClusterClientStats } from './cluster-clients.js';
import { monoMs, userId } from './ipc.js';
import { monoNs, paced, sleep } from './stats.js';

const packr = new Packr({ useRecords: false });
type Reply<T extends FromClusterClients['type']> = Extract<FromClusterClients, { type: T }>;

/** The parent's handle on bench/cluster-clients.ts: commands out, replies and receipt progress in. */
export class ClientsChild {
  /** Messages first received by any client since it started (every ~10 ms). */
  received = 0;
  onProgress?: () => void;
  private waiters: { type: string; resolve: (m: any) => void; reject: (e: Error) => void }[] = [];
  private failure?: Error;

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: FromClusterClients) => {
      if (m.type === 'progress') return void ((this.received = m.received), this.onProgress?.());
      if (m.type === 'failed') return this.fail(new Error(`load generator: ${m.error}`));
      const i = this.waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m);
    });
    child.on('exit', (code) => this.fail(new Error(`load generator exited (${code})`)));
  }

  static start(): ClientsChild {
    const url = fileURLToPath(new URL('./cluster-clients.js', import.meta.url));
    return new ClientsChild(fork(url, [], { execArgv: ['--max-semi-space-size=64'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  ask<T extends FromClusterClients['type']>(m: ToClusterClients, type: T, timeoutMs = 120_000): Promise<Reply<T>> {
    if (this.failure) return Promise.reject(this.failure);
    const p = new Promise<Reply<T>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${type}" from the load generator in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ type, resolve: (r) => (clearTimeout(timer), resolve(r)), reject: (e) => (clearTimeout(timer), reject(e)) });
    });
    this.child.send(m);
    return p;
  }

  async stats(): Promise<ClusterClientStats> {
    return (await this.ask({ type: 'report' }, 'stats')).stats;
  }

  /** Receipt times and latencies of seq from..to-1 (null/NaN: not received). */
  async receipts(from: number, to: number): Promise<{ recvAt: (number | null)[]; latencyMs: (number | null)[]; fromAcceptMs: (number | null)[] }> {
    return this.ask({ type: 'receipts', from, to }, 'receipts');
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}

/** Per message: the user index, when it was first sent (monotonic ms) and the answer. */
export const Answer = { Pending: 0, Accepted: 1, Duplicate: 2, Failed: 3 } as const;
export type Answer = (typeof Answer)[keyof typeof Answer];

/**
 * A chat server on `switchboard.send`: MessagePack request/reply, many requests in flight, never one awaited at a
 * time. Ids are `m-<seq>` over the whole run (JetStream dedupes ids for 2 min); a request that times out or gets
 * `unavailable` is retried with the same id, as a chat server would, so the ingress dedupe absorbs double sends.
 */
export class ChatSender {
  seq = 0;
  readonly user: number[] = [];
  readonly sentAt: number[] = [];
  readonly answer: Answer[] = [];
  retries = 0;
  private inFlight = new Set<Promise<void>>();

  private constructor(readonly nc: NatsConnection, readonly timeoutMs: number) {}

  static async connect(url: string, timeoutMs = 5000): Promise<ChatSender> {
    return new ChatSender(await connect({ servers: url, name: 'bench-chat-server', maxReconnectAttempts: -1 }), timeoutMs);
  }

  /** The request body as sent (also the payload of the baselines). */
  static body(seq: number, user: number): Uint8Array {
    return packr.pack({ id: `m-${seq}`, to: userId(user), text: 'bench message', data: { t: monoNs() } });
  }

  send(user: number): number {
    const seq = this.seq++;
    this.user[seq] = user;
    this.sentAt[seq] = monoMs();
    this.answer[seq] = Answer.Pending;
    const p: Promise<void> = this.request(seq, ChatSender.body(seq, user), 3).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    return seq;
  }

  private async request(seq: number, body: Uint8Array, attempts: number): Promise<void> {
    for (let a = 1; ; a++) {
      try {
        const r = packr.unpack((await this.nc.request('switchboard.send', body, { timeout: this.timeoutMs })).data);
        if (r.status === 'accepted') return void (this.answer[seq] = Answer.Accepted);
        if (r.status === 'duplicate') return void (this.answer[seq] = Answer.Duplicate);
        if (r.error?.code !== 'unavailable' || a >= attempts) return void (this.answer[seq] = Answer.Failed);
      } catch {
        if (a >= attempts) return void (this.answer[seq] = Answer.Failed);
      }
      this.retries++;
    }
  }

  /** Closed loop: `count` messages, at most `window` sent but not yet received; resolves when all are answered. */
  async max(users: number[], count: number, window: number, clients: ClientsChild): Promise<{ from: number; to: number }> {
    const from = this.seq;
    const base = clients.received;
    let wake: (() => void) | undefined;
    clients.onProgress = () => wake?.();
    while (this.seq - from < count) {
      while (this.seq - from < count && this.seq - from - (clients.received - base) < window) this.send(users[(this.seq - from) % users.length]);
      await new Promise<void>((r) => ((wake = r), setTimeout(r, 50)));
    }
    clients.onProgress = undefined;
    await this.settled();
    return { from, to: this.seq };
  }

  /** Open loop at `rate` msgs/s for `durationMs`, whatever the answers do. */
  async paced(users: number[], rate: number, durationMs: number): Promise<{ from: number; to: number }> {
    const from = this.seq;
    await paced(rate, durationMs, () => void this.send(users[(this.seq - from) % users.length]));
    return { from, to: this.seq };
  }

  /** Every request answered (or failed after its retries). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  async close(): Promise<void> {
    await this.nc.close();
    await sleep(0);
  }
}
