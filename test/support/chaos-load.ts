import type { Ledger, NatsClient } from './cluster.js';
import type { NodeProcess } from './node-process.js';
import { msgId } from './scenario.js';
import { until } from './ws-client.js';

/** Load and loss accounting shared by the cluster chaos tests (issues 4 and 8). */

/**
 * A steady sender: `perTick` messages every 10 ms, spread over users, alternating NATS request/reply and HTTP on
 * `httpNodes`; at most `maxInFlight` outstanding. A NATS request unanswered in `natsTimeoutMs` (default 5000), a
 * failed HTTP call or a 503 is sent again with the same id up to `retries` times (default 0), as a chat server does
 * (README, cluster: "Chat servers retry with the same id"). `accepted` (202) goes into the ledger, and so does
 * `duplicate` (200), which says an earlier attempt was stored; everything else counts as not accepted.
 */
export function load(opts: {
  users: string[];
  chat: NatsClient;
  httpNodes: () => NodeProcess[];
  ledger: Ledger;
  perTick?: number;
  maxInFlight?: number;
  natsTimeoutMs?: number;
  retries?: number;
}) {
  const { users, chat, ledger } = opts;
  let n = 0;
  let inFlight = 0;
  let retried = 0;
  const pending = new Set<Promise<void>>();
  const attempt = async (i: number, id: string, user: string, k: number): Promise<boolean> => {
    try {
      if (i % 2 === 0) {
        const status = (await chat.send({ id, to: user, text: 'load' }, { timeoutMs: opts.natsTimeoutMs ?? 5000 })).status;
        return status === 'accepted' || status === 'duplicate';
      }
      const nodes = opts.httpNodes();
      const res = await nodes[(i + k) % nodes.length].send({ id, to: user, text: 'load' });
      return res.status === 202 || (res.status === 200 && res.body?.status === 'duplicate');
    } catch {
      return false;
    }
  };
  const one = async (): Promise<void> => {
    const i = n++;
    const user = users[i % users.length];
    const id = `L${i}-${msgId()}`;
    for (let k = 0; k <= (opts.retries ?? 0); k++) {
      if (k > 0) retried++;
      if (await attempt(i, id, user, k)) {
        ledger.accepted.set(id, user);
        return;
      }
    }
    ledger.rejected.push(id);
  };
  const timer = setInterval(() => {
    for (let k = 0; k < (opts.perTick ?? 3) && inFlight < (opts.maxInFlight ?? 100); k++) {
      inFlight++;
      const p: Promise<void> = one().finally(() => {
        inFlight--;
        pending.delete(p);
      });
      pending.add(p);
    }
  }, 10);
  return {
    /** Attempts after the first. */
    get retried() {
      return retried;
    },
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
    },
  };
}

/**
 * Awaits every accepted id of the ledger arriving at its user within `timeoutMs`; else throws naming how many are
 * missing, the routes their decisions took (from `events.routed`), a few examples, and the nodes' warnings when
 * `cluster` is given.
 */
export async function expectAllDelivered(ledger: Ledger, chat: NatsClient, timeoutMs: number, cluster?: { warnings(): string }): Promise<void> {
  try {
    await until(() => ledger.missing().length === 0, timeoutMs, 'every accepted message delivered');
  } catch (e) {
    const missing = ledger.missing();
    const detail = missing.slice(0, 8).map((id) => ({ id, user: ledger.accepted.get(id), events: chat.eventsFor(id).map((ev) => `${ev.node}:${ev.route}/${ev.reason}`) }));
    const routes: Record<string, number> = {};
    for (const id of missing) for (const ev of chat.eventsFor(id)) routes[ev.route] = (routes[ev.route] ?? 0) + 1;
    const noEvent = missing.filter((id) => chat.eventsFor(id).length === 0).length;
    throw new Error(`${(e as Error).message}: ${missing.length}/${ledger.accepted.size} missing (routes of the missing: ${JSON.stringify(routes)}, without any routed event: ${noEvent}), e.g. ${JSON.stringify(detail)}${cluster ? `\nthe nodes' warnings:\n${cluster.warnings()}` : ''}`);
  }
}
