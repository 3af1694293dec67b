import { pino } from 'pino';
import { MemoryBus } from '../bus/memory-bus.js';
import { Subjects } from '../bus/subjects.js';
import { createGateway, type Gateway } from '../gateway/server.js';
import type { ChatMessage, OwnerMessage, UserPolicy } from '../protocol/index.js';
import type { Clock, Timer } from '../base/clock.js';
import { gatewayConfigOf, parseConfig } from '../runtime/config.js';
import { Metrics } from '../base/metrics.js';
import { isAllowedPushEndpoint } from '../senders/webpush-hosts.js';
import { acceptEach } from '../store/accept-each.js';
import type { AcceptOutcome, AcceptResult, DeviceRecord, DeviceRegistry, PolicyStore } from '../store/types.js';

/** Real wall time for `now`, but timers only fire when a test advances them (hello timeout, close grace). */
export class ManualTimers implements Clock {
  private offset = 0;
  private timers: { at: number; fn: () => void; handle: Timer }[] = [];
  now(): number {
    return Date.now() + this.offset;
  }
  setTimeout(fn: () => void, ms: number): Timer {
    const handle = { manual: true } as unknown as Timer;
    this.timers.push({ at: this.now() + ms, fn, handle });
    return handle;
  }
  clearTimeout(t: Timer): void {
    this.timers = this.timers.filter((x) => x.handle !== t);
  }
  advance(ms: number): void {
    this.offset += ms;
    const due = this.timers.filter((t) => t.at <= this.now());
    this.timers = this.timers.filter((t) => t.at > this.now());
    for (const t of due) t.fn();
  }
}

export class MapRegistry implements DeviceRegistry {
  readonly devices = new Map<string, DeviceRecord>();
  failing = false;
  async put(user: string, device: string, reg: { os: DeviceRecord['os']; token: string; app?: string }): Promise<DeviceRecord> {
    if (this.failing) throw new Error('disk full');
    const rec = { device, ...reg, updatedAt: 1 };
    this.devices.set(`${user}/${device}`, rec);
    return rec;
  }
  async remove(user: string, device: string): Promise<boolean> {
    return this.devices.delete(`${user}/${device}`);
  }
  async clearToken(user: string, device: string, token: string): Promise<boolean> {
    const rec = this.devices.get(`${user}/${device}`);
    if (rec?.token !== token) return false;
    delete (rec as Partial<DeviceRecord>).token;
    return true;
  }
  readonly seenCalls: string[] = [];
  async seen(user: string, device: string): Promise<void> {
    this.seenCalls.push(`${user}/${device}`);
  }
  async prune(): Promise<number> {
    return 0;
  }
  async list(user: string): Promise<DeviceRecord[]> {
    return [...this.devices].filter(([k]) => k.startsWith(`${user}/`)).map(([, r]) => ({ ...r }));
  }
  async close(): Promise<void> {}
}

export const JWT_SECRET = 'in-process-jwt-secret-0123456789';
export const API_KEY = 'in-process-api-key-0123456789';

/**
 * A gateway in this process on a free loopback port, with a MemoryBus and a fake owner that records every
 * owner message and replaces an older session of the same user and device (4409), as the user directory does.
 */
/** `overrides`: gateway deps to replace (a cluster view, say). */
export async function startGateway(env: Record<string, string> = {}, overrides: Partial<Parameters<typeof createGateway>[0]> = {}) {
  const config = parseConfig({ SWITCHBOARD_NODE_ID: 'gw-test', SWITCHBOARD_LOG_LEVEL: 'silent', ...env });
  const bus = new MemoryBus();
  const subjects = new Subjects(config.subjectPrefix, config.partitions);
  const metrics = new Metrics({ defaultMetrics: false });
  const clock = new ManualTimers();
  const registry = new MapRegistry();
  const accepted: ChatMessage[] = [];
  const ingress = {
    failWith: undefined as Error | undefined,
    async accept(msg: ChatMessage): Promise<AcceptResult> {
      if (this.failWith) throw this.failWith;
      if (accepted.some((m) => m.id === msg.id)) return 'duplicate';
      accepted.push(msg);
      return 'accepted';
    },
    acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]> {
      return acceptEach((m) => this.accept(m), msgs);
    },
  };
  const owned: OwnerMessage[] = [];
  const live = new Map<string, string>();
  bus.subscribe(subjects.ownerPartition('*'), (msg) => {
    const m = msg as OwnerMessage;
    owned.push(m);
    if (m.type === 'session_open') {
      const key = `${m.user}/${m.device}`;
      const old = live.get(key);
      live.set(key, m.session.id);
      if (old) bus.publish(subjects.gateway(m.session.node), { type: 'close_session', sessionId: old, code: 4409, reason: 'replaced' });
    }
  });
  const state = { ready: true };
  const gateway: Gateway = createGateway({
    config: gatewayConfigOf(config), nodeId: config.nodeId, bus, subjects, ingress, registry, policies: mapPolicies(), metrics, clock,
    registration: { apps: new Set(['default', 'chat', 'beta']), isAllowedPushEndpoint: (u) => isAllowedPushEndpoint(u) },
    log: pino({ level: 'silent' }), jwtSecret: JWT_SECRET, apiKey: API_KEY, isReady: () => state.ready,
    ...overrides,
  });
  const port = await gateway.listen('127.0.0.1', 0);
  const url = `http://127.0.0.1:${port}`;

  async function http(method: string, path: string, opts: { body?: string; key?: string | null; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
    if (opts.key !== null) headers.authorization = `Bearer ${opts.key ?? API_KEY}`;
    const res = await fetch(url + path, { method, headers, body: opts.body });
    const text = await res.text();
    let body: any = text;
    try { body = text ? JSON.parse(text) : undefined; } catch { /* keep the text */ }
    return { status: res.status, body, headers: res.headers };
  }

  async function metric(name: string, labels: Record<string, string>): Promise<number> {
    const m = await metrics.registry.getSingleMetric(name)?.get();
    const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
    return v?.value ?? 0;
  }

  return {
    config, bus, subjects, metrics, clock, registry, ingress, accepted, owned, state, gateway, port, url,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`, http, metric,
  };
}

export type GatewayFixture = Awaited<ReturnType<typeof startGateway>>;

/** An in-memory PolicyStore for gateway tests (the real ones pass test/contracts/policy-store.contract.ts). */
export function mapPolicies(): PolicyStore & { map: Map<string, UserPolicy> } {
  const map = new Map<string, UserPolicy>();
  return { map, get: async (u) => map.get(u), put: async (u, p) => void map.set(u, p), close: async () => {} };
}
