import { MemoryBus } from '../../bus/memory-bus.js';
import { Subjects } from '../../bus/subjects.js';
import { UserDirectory, type DirectoryDeps } from '../../actors/directory.js';
import type { ChatMessage, GatewayMessage, OwnerMessage, RoutedEvent } from '../../protocol/index.js';
import { systemClock } from '../../base/clock.js';
import { createLogger } from '../../base/logger.js';
import { Metrics } from '../../base/metrics.js';
import type { PushJob, PushOutcome, PushSink } from '../../senders/types.js';
import type { DeviceRecord, DeviceRegistry, HeldMessage, HeldStore, ReadChange, ReadState } from '../../store/types.js';
import { copyReadState, emptyReadState } from '../../store/read-state.js';
import type { DeviceRegistration } from '../../protocol/index.js';

/** In-memory DeviceRegistry; `hang` makes list() never resolve (a stuck store). */
export class FakeRegistry implements DeviceRegistry {
  readonly records = new Map<string, DeviceRecord[]>();
  readonly cleared: string[] = [];
  hang = false;

  async put(user: string, device: string, reg: DeviceRegistration): Promise<DeviceRecord> {
    const list = (this.records.get(user) ?? []).filter((r) => r.device !== device);
    const rec: DeviceRecord = { device, ...reg, updatedAt: Date.now() };
    this.records.set(user, [...list, rec]);
    return rec;
  }
  async remove(user: string, device: string): Promise<boolean> {
    const list = this.records.get(user) ?? [];
    this.records.set(user, list.filter((r) => r.device !== device));
    return list.some((r) => r.device === device);
  }
  async clearToken(user: string, device: string, token: string): Promise<boolean> {
    this.cleared.push(`${user}/${device}/${token}`);
    const rec = this.records.get(user)?.find((r) => r.device === device && r.token === token);
    if (rec) delete rec.token;
    return rec !== undefined;
  }
  async seen(): Promise<void> {}
  async prune(): Promise<number> {
    return 0;
  }
  list(user: string): Promise<DeviceRecord[]> {
    if (this.hang) return new Promise(() => {});
    return Promise.resolve((this.records.get(user) ?? []).map((r) => ({ ...r })));
  }
  async close(): Promise<void> {}
}

/** In-memory HeldStore for actor tests; `failing` makes holds reject (a store that cannot write). */
export class FakeHeldStore implements HeldStore {
  readonly held = new Map<string, HeldMessage[]>();
  readonly readStates = new Map<string, ReadState>();
  failing = false;
  /** When set, `list` answers only once it resolves, with what was held when it was called (a slow store read). */
  listGate?: Promise<void>;

  async list(user: string, now: number): Promise<HeldMessage[]> {
    const out = this.snapshot(user, now);
    if (this.listGate) await this.listGate;
    return out;
  }
  async count(user: string, now: number): Promise<number> {
    return this.snapshot(user, now).length;
  }
  private snapshot(user: string, now: number): HeldMessage[] {
    return (this.held.get(user) ?? []).filter((h) => h.expiresAt > now).sort((a, b) => a.msg.acceptedAt - b.msg.acceptedAt);
  }
  async hold(user: string, h: HeldMessage): Promise<void> {
    if (this.failing) throw new Error('disk full');
    const list = this.held.get(user) ?? [];
    if (!list.some((x) => x.msg.id === h.msg.id)) list.push(h);
    this.held.set(user, list);
  }
  async drop(user: string, ids: readonly string[]): Promise<number> {
    const before = this.held.get(user) ?? [];
    const after = before.filter((h) => !ids.includes(h.msg.id));
    this.held.set(user, after);
    return before.length - after.length;
  }
  async reads(user: string): Promise<ReadState> {
    const s = this.readStates.get(user);
    return s ? copyReadState(s) : emptyReadState();
  }
  async saveReads(user: string, state: ReadState, _c: ReadChange, _durable: boolean): Promise<void> {
    this.readStates.set(user, copyReadState(state));
  }
  get heldTotal(): number {
    let n = 0;
    for (const l of this.held.values()) n += l.length;
    return n;
  }
  async close(): Promise<void> {}
}

/** Records every push; answers with `auto` at once, or leaves it pending for `answer()` when auto is undefined. */
export class FakePushes implements PushSink {
  readonly jobs: PushJob[] = [];
  private readonly pending = new Map<string, (o: PushOutcome) => void>();
  auto: PushOutcome | undefined = { outcome: 'ok' };

  push(job: PushJob): Promise<PushOutcome> {
    this.jobs.push(job);
    if (this.auto) return Promise.resolve(this.auto);
    return new Promise((resolve) => this.pending.set(job.jobId, resolve));
  }
  answer(jobId: string, o: PushOutcome): void {
    this.pending.get(jobId)!(o);
    this.pending.delete(jobId);
  }
  async close(): Promise<void> {}
}

/** A UserDirectory on a MemoryBus with fakes, recording what reaches the gateways `gw1` and `gw2`. */
export function harness(overrides: Partial<DirectoryDeps> = {}) {
  const bus = new MemoryBus();
  const subjects = new Subjects('sb', 4);
  const registry = new FakeRegistry();
  const pushes = new FakePushes();
  const held = new FakeHeldStore();
  const metrics = new Metrics({ defaultMetrics: false });
  const gateway: { node: string; msg: GatewayMessage }[] = [];
  for (const node of ['gw1', 'gw2']) bus.subscribe(subjects.gateway(node), (m) => gateway.push({ node, msg: m as GatewayMessage }));
  const settled: string[] = [];
  const routed: RoutedEvent[] = [];
  const router = new UserDirectory({
    nodeId: 'n1', bus, subjects, registry, pushes, clock: systemClock, metrics, log: createLogger('silent'),
    ackTimeoutMs: 5000, presenceTtlMs: 90_000, pushDelayMs: 0, passivateAfterMs: 60_000,
    held, holdTtlMs: 7 * 24 * 3600_000, holdMax: 1000, maxInflight: 256,
    done: (id) => settled.push(id), onRouted: (e) => routed.push(e), ...overrides,
  });
  const send = (m: OwnerMessage): void => router.handle(m);
  const at = (): number => Date.now();
  return {
    bus, registry, pushes, held, metrics, gateway, settled, routed, router, send,
    deliveries: () => gateway.filter((g) => g.msg.type === 'deliver').map((g) => `${g.node}:${(g.msg as { sessionId: string }).sessionId}`),
    /** Opens a PC session and, unless `active` is false, reports it active (claim 4: no report = not active). */
    openPc: (user: string, device: string, sessionId: string, node = 'gw1', active = true) => {
      send({ type: 'session_open', user, device, kind: 'pc', session: { node, id: sessionId }, at: at() });
      if (active) send({ type: 'presence', user, device, sessionId, state: 'active', at: at() });
    },
    openPhone: (user: string, device: string, os: DeviceRecord['os'], sessionId: string, node = 'gw2') =>
      send({ type: 'session_open', user, device, kind: 'mobile', os, session: { node, id: sessionId }, at: at() }),
    presence: (user: string, device: string, sessionId: string, state: 'active' | 'inactive' | 'foreground' | 'background', reason?: 'idle' | 'screen_locked' | 'client_locked') =>
      send({ type: 'presence', user, device, sessionId, state, ...(reason ? { reason } : {}), at: at() }),
    ack: (user: string, device: string, sessionId: string, id: string) => send({ type: 'ack', user, device, sessionId, id, at: at() }),
    read: (user: string, ids: string[], sessionId?: string, device?: string) => send({ type: 'read', user, ids, ...(sessionId ? { sessionId, device } : {}), at: at() }),
    close: (user: string, device: string, sessionId: string) => send({ type: 'session_close', user, device, sessionId, at: at() }),
    route: (user: string, id: string, extra: Partial<ChatMessage> = {}) => send({ type: 'route', user, msg: { id, to: user, text: 'hello', acceptedAt: at(), ...extra } }),
    async decisions(user: string) {
      const r = await router.answer({ type: 'decisions_query', user, limit: 10 });
      if (r.type !== 'decisions') throw new Error(JSON.stringify(r));
      return r.decisions;
    },
    async view(user: string) {
      const r = await router.answer({ type: 'user_query', user });
      if (r.type !== 'user_view') throw new Error(JSON.stringify(r));
      return r.view;
    },
  };
}

/** Lets the mailboxes run (microtasks) by waiting on setImmediate, which the fake timers leave real. */
export async function until(cond: () => boolean, ticks = 2000): Promise<void> {
  for (let i = 0; i < ticks; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('condition not reached');
}

export async function settle(h: { router: UserDirectory }): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setImmediate(r));
    await h.router.drain(1000);
  }
}

/** A gate for a fake store call to wait on: `g.promise` settles when `g()` is called (a slow disk, a late answer). */
export function gate(): (() => void) & { promise: Promise<void> } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return Object.assign(() => open(), { promise });
}
