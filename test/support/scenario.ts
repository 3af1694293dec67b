import { randomBytes } from 'node:crypto';
import type { NodeProcess } from './node-process.js';
import { TestClient, until, type Claims } from './ws-client.js';

/**
 * Helpers for end-to-end routing scenarios against a real node (test/routing-*.int.test.ts,
 * test/durability.int.test.ts): clients that record every message id they ever received, and awaits on the
 * node's own view of a user (`GET /v1/users/{u}`, `GET /v1/users/{u}/decisions`) instead of sleeping.
 */

export interface Target {
  device: string;
  via: string;
  outcome?: string;
  detail?: string;
}

export interface Decision {
  id: string;
  route: string;
  reason: string;
  targets: Target[];
  at: number;
}

export interface UserView {
  user: string;
  owner: string;
  pc: { state: 'active' | 'inactive'; reason?: string; sessions: number };
  devices: { device: string; os: string; online: boolean; hasToken: boolean }[];
  /** PROTOCOL.md v1.1 section 3: messages held, and delivered-and-unread (the badge). */
  held: number;
  unread: number;
}

/** A unique user id per test, so tests on one node never see each other's state. */
export function uniqueUser(prefix = 'u'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** A unique message id. */
export function msgId(prefix = 'm'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** A client session that remembers every `message` id it received (even those `next` took) and acks on demand. */
export class Peer {
  /** Every `message` id received, in arrival order, duplicates included. */
  readonly received: string[] = [];
  /** When true every `message` frame is acked as it arrives. */
  autoAck: boolean;

  private constructor(readonly client: TestClient, readonly claims: Claims, autoAck: boolean) {
    this.autoAck = autoAck;
    client.onEachFrame((f) => {
      if (f.type !== 'message') return;
      this.received.push(f.id);
      if (this.autoAck) client.send({ type: 'ack', id: f.id });
    });
  }

  static async open(node: { wsUrl: string; jwtSecret: string }, claims: Claims, opts: { autoAck?: boolean } = {}): Promise<Peer> {
    const client = await TestClient.session(node.wsUrl, node.jwtSecret, claims);
    return new Peer(client, claims, opts.autoAck ?? true);
  }

  get device(): string {
    return this.claims.dev;
  }

  /**
   * Calls `handler` with the id of every `message` frame since the connection opened, those already received first:
   * held messages replayed right after the welcome arrive before `open` returns, and a listener added on the socket
   * then would miss them (they are acked all the same, so the node counts them delivered).
   */
  onMessage(handler: (id: string) => void): void {
    this.client.onEachFrame((f) => {
      if (f.type === 'message') handler(f.id);
    });
  }

  send(frame: unknown): void {
    this.client.send(frame);
  }

  ack(id: string): void {
    this.client.send({ type: 'ack', id });
  }

  /** Awaits a `message` frame with this id (already received or later). */
  message(id: string, timeoutMs = 5000): Promise<any> {
    return this.client.message(id, timeoutMs);
  }

  count(id: string): number {
    return this.received.filter((x) => x === id).length;
  }

  close(): void {
    this.client.close();
  }
}

export const enc = encodeURIComponent;

export async function userView(node: NodeProcess, user: string): Promise<UserView> {
  const res = await node.http('GET', `/v1/users/${enc(user)}`);
  if (res.status !== 200) throw new Error(`GET /v1/users/${user}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Awaits the node's view of `user` satisfying `cond`. */
export async function viewUntil(node: NodeProcess, user: string, cond: (v: UserView) => boolean, what: string, timeoutMs = 5000): Promise<UserView> {
  let last: UserView | undefined;
  try {
    await until(async () => cond((last = await userView(node, user))), timeoutMs, what);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last view: ${JSON.stringify(last)}`);
  }
  return last!;
}

export async function decisions(node: NodeProcess, user: string, limit = 100): Promise<Decision[]> {
  const res = await node.http('GET', `/v1/users/${enc(user)}/decisions?limit=${limit}`);
  if (res.status !== 200) throw new Error(`GET decisions of ${user}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.decisions;
}

/** Every decision taken for message `id`, oldest first. */
export async function decisionsFor(node: NodeProcess, user: string, id: string): Promise<Decision[]> {
  return (await decisions(node, user)).filter((d) => d.id === id).reverse();
}

/** Awaits a decision for message `id` that satisfies `cond` (default: any). */
export async function awaitDecision(
  node: NodeProcess,
  user: string,
  id: string,
  cond: (d: Decision) => boolean = () => true,
  timeoutMs = 5000,
): Promise<Decision> {
  let found: Decision | undefined;
  let seen: Decision[] = [];
  try {
    await until(
      async () => {
        seen = await decisionsFor(node, user, id);
        found = seen.find(cond);
        return found !== undefined;
      },
      timeoutMs,
      `a decision for ${id}`,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; decisions for it so far: ${JSON.stringify(seen)}`);
  }
  return found!;
}

/** True when every target of the decision reached a final outcome. */
export function settled(d: Decision): boolean {
  return d.targets.every((t) => t.outcome !== undefined);
}

export function target(d: Decision, device: string): Target | undefined {
  return d.targets.find((t) => t.device === device);
}

/** Awaits the target `device` of the decision for `id` reaching an outcome; returns that target. */
export async function awaitOutcome(node: NodeProcess, user: string, id: string, device: string, timeoutMs = 5000): Promise<Target> {
  const d = await awaitDecision(node, user, id, (x) => target(x, device)?.outcome !== undefined, timeoutMs);
  return target(d, device)!;
}

/** Sends a message and checks it was accepted (202). */
export async function accept(node: NodeProcess, msg: { id: string; to: string } & Record<string, unknown>): Promise<void> {
  const res = await node.send(msg);
  if (res.status !== 202) throw new Error(`POST /v1/messages ${msg.id}: ${res.status} ${JSON.stringify(res.body)}`);
}
