import { SwitchboardError, type BusMessage } from '../protocol/index.js';
import type { Bus, Subscription } from './bus.js';

type Handler = (msg: BusMessage) => void;
type Responder = (msg: BusMessage) => Promise<BusMessage> | BusMessage;

/** Resolved subjects kept at most; a bus that sees more distinct subjects starts over (bounded memory). */
const MAX_ROUTES = 100_000;
const NONE: readonly Handler[] = Object.freeze([]);

/**
 * The embedded, in-process bus: one node, no network. Messages are passed by reference (they are
 * immutable by convention) and delivered synchronously, in publish order, to every matching subscriber.
 *
 * Fast path (issue 13): the handlers of a subject (exact and wildcard subscribers) are resolved once and kept in
 * `routes`, so a publish is one map lookup instead of splitting the subject and matching every pattern. Any
 * subscribe or unsubscribe clears the table; subscriptions change rarely (start-up, partitions moving).
 */
export class MemoryBus implements Bus {
  private readonly exact = new Map<string, Set<Handler>>();
  private readonly patterns: { pattern: string[]; handler: Handler }[] = [];
  private readonly responders = new Map<string, Responder>();
  private readonly patternResponders: { pattern: string[]; handler: Responder }[] = [];
  private readonly routes = new Map<string, readonly Handler[]>();
  private closed = false;

  publish(subject: string, msg: BusMessage): void {
    if (this.closed) return;
    const handlers = this.routes.get(subject) ?? this.resolve(subject);
    // Indexed loop over a snapshot: a handler that subscribes or unsubscribes replaces the table, not this array.
    for (let i = 0; i < handlers.length; i++) handlers[i](msg);
  }

  /** Exact subscribers first (in subscription order), then matching patterns: the order `publish` always had. */
  private resolve(subject: string): readonly Handler[] {
    const out: Handler[] = [...(this.exact.get(subject) ?? [])];
    if (this.patterns.length > 0) {
      const tokens = subject.split('.');
      for (const p of this.patterns) if (matches(p.pattern, tokens)) out.push(p.handler);
    }
    const handlers = out.length === 0 ? NONE : out;
    if (this.routes.size >= MAX_ROUTES) this.routes.clear();
    this.routes.set(subject, handlers);
    return handlers;
  }

  subscribe(subject: string, handler: Handler): Subscription {
    this.routes.clear();
    if (isPattern(subject)) {
      const entry = { pattern: subject.split('.'), handler };
      this.patterns.push(entry);
      return { unsubscribe: () => (this.routes.clear(), remove(this.patterns, entry)) };
    }
    let set = this.exact.get(subject);
    if (!set) this.exact.set(subject, (set = new Set()));
    set.add(handler);
    return {
      unsubscribe: () => {
        this.routes.clear();
        set.delete(handler);
        if (set.size === 0 && this.exact.get(subject) === set) this.exact.delete(subject);
      },
    };
  }

  async request(subject: string, msg: BusMessage, timeoutMs: number): Promise<BusMessage> {
    const responder = this.responderFor(subject);
    if (!responder || this.closed) throw new SwitchboardError('unavailable', `no responder for ${subject}`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SwitchboardError('unavailable', `no answer on ${subject} in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([Promise.resolve().then(() => responder(msg)), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  serve(subject: string, handler: Responder): Subscription {
    if (isPattern(subject)) {
      const entry = { pattern: subject.split('.'), handler };
      this.patternResponders.push(entry);
      return { unsubscribe: () => remove(this.patternResponders, entry) };
    }
    this.responders.set(subject, handler);
    return { unsubscribe: () => this.responders.delete(subject) };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.routes.clear();
    this.exact.clear();
    this.patterns.length = 0;
    this.responders.clear();
    this.patternResponders.length = 0;
  }

  private responderFor(subject: string): Responder | undefined {
    const direct = this.responders.get(subject);
    if (direct) return direct;
    const tokens = subject.split('.');
    return this.patternResponders.find((p) => matches(p.pattern, tokens))?.handler;
  }
}

function isPattern(subject: string): boolean {
  return subject.includes('*') || subject.endsWith('>');
}

/** NATS subject matching: `*` is one token, a final `>` is one or more. */
export function matches(pattern: string[], tokens: string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '>') return tokens.length > i;
    if (i >= tokens.length) return false;
    if (p !== '*' && p !== tokens[i]) return false;
  }
  return pattern.length === tokens.length;
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
