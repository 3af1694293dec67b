import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { NodeProcess, NodeStartTimeout } from './node-process.js';
import { userView, type Decision } from './scenario.js';
import { until } from './ws-client.js';

/**
 * Cluster-mode harness (issue 4): K real Switchboard nodes in child processes against given NATS servers, sharing
 * the JWT secret and API key, each with its own SWITCHBOARD_NODE_ID; plus a plain NATS client for `switchboard.send`
 * and `switchboard.events.routed`. Everything is awaited on conditions (readyz, metrics), never slept.
 */

const packr = new Packr({ useRecords: false });

export interface ClusterOptions {
  /** NATS URLs every node connects to (comma-joined into SWITCHBOARD_NATS_URL). */
  natsUrls: string[];
  /** Nodes to start now. */
  nodes: number;
  /** SWITCHBOARD_PARTITIONS, default 12. */
  partitions?: number;
  /** Extra env for every node. */
  env?: Record<string, string>;
}

export class Cluster {
  readonly nodes: NodeProcess[] = [];
  /** node id -> process, including stopped ones. */
  readonly byId = new Map<string, NodeProcess>();
  readonly ids = new Map<NodeProcess, string>();
  readonly apiKey = randomBytes(24).toString('base64url');
  readonly jwtSecret = randomBytes(32).toString('base64url');
  readonly partitions: number;
  private seq = 0;
  private readonly tag = randomBytes(3).toString('hex');

  private constructor(readonly opts: ClusterOptions) {
    this.partitions = opts.partitions ?? 12;
  }

  static async start(opts: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(opts);
    try {
      await Promise.all(Array.from({ length: opts.nodes }, () => c.add()));
      await c.awaitSettled();
    } catch (e) {
      await c.dispose();
      throw e;
    }
    return c;
  }

  /**
   * Starts one more node (not awaited for readiness; see awaitSettled). A node that neither listens nor exits in time
   * (NodeStartTimeout, seen on a busy VM under the full suite) is killed, its log written to stderr, and started
   * once more under the same id, as an operator's supervisor would; a second one fails the start with its log.
   */
  async add(env: Record<string, string> = {}): Promise<NodeProcess> {
    const id = `sb-${this.tag}-${++this.seq}`;
    try {
      return await this.startNode(id, env);
    } catch (e) {
      if (!(e instanceof NodeStartTimeout)) throw e;
      process.stderr.write(`cluster node ${id}: ${e.message}\nstarting it once more\n`);
      return this.startNode(id, env);
    }
  }

  private async startNode(id: string, env: Record<string, string>): Promise<NodeProcess> {
    const node = await NodeProcess.start({
      apiKey: this.apiKey,
      jwtSecret: this.jwtSecret,
      env: {
        SWITCHBOARD_NATS_URL: this.opts.natsUrls.join(','),
        SWITCHBOARD_NODE_ID: id,
        SWITCHBOARD_PARTITIONS: String(this.partitions),
        ...this.opts.env,
        ...env,
      },
    });
    this.nodes.push(node);
    this.byId.set(id, node);
    this.ids.set(node, id);
    return node;
  }

  id(node: NodeProcess): string {
    return this.ids.get(node)!;
  }

  /** Nodes whose process has not exited. */
  get alive(): NodeProcess[] {
    return this.nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
  }

  /** Awaits every live node answering /readyz 200, each owning <= ceil(P/N) and the sum being P. */
  async awaitSettled(timeoutMs = 15_000, nodes: NodeProcess[] = this.alive): Promise<Map<string, number>> {
    let last = new Map<string, number>();
    const cap = Math.ceil(this.partitions / nodes.length);
    try {
      await until(async () => {
        const ready = await Promise.all(nodes.map((n) => readyz(n)));
        last = await this.ownedByNode(nodes);
        const counts = [...last.values()];
        return ready.every(Boolean) && counts.every((c) => c <= cap) && counts.reduce((a, b) => a + b, 0) === this.partitions;
      }, timeoutMs, 'the cluster to settle');
    } catch (e) {
      throw new Error(`${(e as Error).message}: owned ${JSON.stringify([...last])}, cap ${cap}, P ${this.partitions}`);
    }
    return last;
  }

  async ownedByNode(nodes: NodeProcess[] = this.alive): Promise<Map<string, number>> {
    const counts = await Promise.all(nodes.map((n) => ownedPartitions(n).catch(() => -1)));
    return new Map(nodes.map((n, i) => [this.id(n), counts[i]]));
  }

  /** The node id owning `user`, as `GET /v1/users/{u}` on `via` (default: the first live node) reports it. */
  async ownerOf(user: string, via: NodeProcess = this.alive[0]): Promise<string> {
    return (await userView(via, user)).owner;
  }

  /** A fresh user id whose owner satisfies `pred`. */
  async userOwnedBy(pred: (owner: string) => boolean, prefix = 'u'): Promise<{ user: string; owner: string }> {
    for (let i = 0; i < 200; i++) {
      const user = `${prefix}-${randomBytes(5).toString('hex')}`;
      const owner = await this.ownerOf(user);
      if (pred(owner)) return { user, owner };
    }
    throw new Error('no user found with a matching owner');
  }

  /** SIGKILLs whatever still runs and removes the data dirs. */
  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => {
      if (n.proc.exitCode === null && n.proc.signalCode === null) {
        try { n.proc.kill('SIGCONT'); } catch { /* gone */ }
        await n.kill('SIGKILL');
      }
      await n.removeData();
    }));
  }

  /**
   * The warnings and errors (pino level 40 and up) of every node, the last `lines` of each, for failure messages: a
   * loss names its cause there (a partition's acquire handler failing, a store that did not answer).
   */
  warnings(lines = 20): string {
    return this.nodes.map((n) => `--- ${this.id(n)}\n${n.lines.filter((l) => /^\{"level":[4-6]\d,/.test(l)).slice(-lines).join('\n')}`).join('\n');
  }

  /** Log lines of every node, for failure messages. */
  logTail(lines = 30): string {
    return this.nodes.map((n) => `--- ${this.id(n)}\n${n.lines.slice(-lines).join('\n')}`).join('\n');
  }
}

export async function readyz(node: NodeProcess): Promise<boolean> {
  try {
    return (await fetch(`${node.url}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

/** `switchboard_owned_partitions` from /metrics. */
export async function ownedPartitions(node: NodeProcess): Promise<number> {
  return metric(node, 'switchboard_owned_partitions');
}

/** The sum of every sample of a metric (all label sets). */
export async function metric(node: NodeProcess, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line);
    if (m && m[1] === name) sum += Number(m[3]);
  }
  return sum;
}

export interface RoutedEvent extends Decision {
  user: string;
  node: string;
  /** Local receive time (Date.now()). */
  seenAt: number;
}

/** A chat server's NATS connection: `switchboard.send` requests and the routed events stream. */
export class NatsClient {
  readonly events: RoutedEvent[] = [];
  private eventsSub?: Subscription;

  private constructor(readonly nc: NatsConnection, readonly prefix: string) {}

  static async connect(urls: string[], prefix = 'switchboard'): Promise<NatsClient> {
    const nc = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    return new NatsClient(nc, prefix);
  }

  /** Starts recording `<prefix>.events.routed` (MessagePack); resolves once the server has the subscription. */
  async recordEvents(): Promise<void> {
    this.eventsSub = this.nc.subscribe(`${this.prefix}.events.routed`, {
      callback: (err, m) => {
        if (err) return;
        this.events.push({ ...(packr.unpack(m.data) as Omit<RoutedEvent, 'seenAt'>), seenAt: Date.now() });
      },
    });
    await this.nc.flush();
  }

  eventsFor(id: string): RoutedEvent[] {
    return this.events.filter((e) => e.id === id);
  }

  /** `switchboard.send` request; the reply decoded in the request's encoding. */
  async send(msg: unknown, opts: { json?: boolean; timeoutMs?: number } = {}): Promise<any> {
    if (opts.json) return this.sendRaw(new TextEncoder().encode(JSON.stringify(msg)), { json: true, timeoutMs: opts.timeoutMs });
    return this.sendRaw(packr.pack(msg), { timeoutMs: opts.timeoutMs });
  }

  /** A raw payload (possibly malformed) on `switchboard.send`. */
  async sendRaw(payload: Uint8Array, opts: { json?: boolean; timeoutMs?: number } = {}): Promise<any> {
    const h = headers();
    if (opts.json) h.set('Content-Type', 'application/json');
    const reply = await this.nc.request(`${this.prefix}.send`, payload, { timeout: opts.timeoutMs ?? 5000, ...(opts.json ? { headers: h } : {}) });
    return opts.json ? JSON.parse(new TextDecoder().decode(reply.data)) : packr.unpack(reply.data);
  }

  async close(): Promise<void> {
    this.eventsSub?.unsubscribe();
    await this.nc.close();
  }
}

/** Awaits JetStream answering on every given server (a fresh cluster elects its meta leader first). */
export async function awaitJetStream(urls: string[], timeoutMs = 20_000): Promise<void> {
  for (const url of urls) {
    const nc = await connect({ servers: [url] });
    try {
      await until(async () => {
        try {
          const jsm = await jetstreamManager(nc, { timeout: 1000 });
          await jsm.getAccountInfo();
          return true;
        } catch {
          return false;
        }
      }, timeoutMs, `JetStream on ${url}`);
    } finally {
      await nc.close();
    }
  }
}

/** Message counting for chaos tests: every accepted id, and every arrival at any device of its user. */
export class Ledger {
  /** accepted id -> user */
  readonly accepted = new Map<string, string>();
  /** id -> arrivals (any device of the user) */
  readonly arrivals = new Map<string, number>();
  readonly rejected: string[] = [];

  arrive(id: string): void {
    this.arrivals.set(id, (this.arrivals.get(id) ?? 0) + 1);
  }

  missing(): string[] {
    return [...this.accepted.keys()].filter((id) => !this.arrivals.has(id));
  }

  /** Extra arrivals beyond the first, over accepted ids. */
  duplicates(): number {
    let n = 0;
    for (const id of this.accepted.keys()) n += Math.max(0, (this.arrivals.get(id) ?? 0) - 1);
    return n;
  }
}
