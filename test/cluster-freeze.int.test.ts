import { afterEach, describe, expect, it } from 'vitest';
import { expectAllDelivered, load } from './support/chaos-load.js';
import { Cluster, Ledger, NatsClient } from './support/cluster.js';
import { HeartbeatClient } from './support/heartbeat-client.js';
import type { NodeProcess } from './support/node-process.js';
import { NatsServer } from './support/nats-server.js';
import { msgId, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * Issue 8, the cluster chaos test: three real nodes on a real nats-server, users spread over all three gateways (some
 * with a PC and a phone, some with only a phone), a few hundred messages per second over `switchboard.send` and HTTP.
 * One node is frozen (SIGSTOP) for 8 s and resumed, later another one is killed (SIGKILL). Clients behave like real
 * apps with a heartbeat: a socket silent for 2 s is dropped and the session opened again on a live gateway.
 * Accepted means it reaches the user (PROTOCOL.md v1.1 sections 2 and 4): messages for users whose socket was on the
 * frozen or dead gateway are held and delivered after the reconnect, so every accepted message arrives (lost 0);
 * duplicates (a redelivery after a takeover, a PC delivery that timed out on the frozen gateway and fell back) are
 * counted and printed, not failed: clients ignore an id they have seen.
 */

const FREEZE_MS = 8000;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

describe('cluster freeze and kill under load (issue 8)', () => {
  it('SIGSTOP of one node for 8 s, then SIGKILL of another: every accepted message reaches its user', async () => {
    const t0Test = Date.now();
    const server = await NatsServer.start();
    cleanups.push(() => server.dispose());
    const c = await Cluster.start({ natsUrls: [server.url], nodes: 3, partitions: 12, env: { SWITCHBOARD_ACK_TIMEOUT_MS: '1500' } });
    cleanups.push(() => c.dispose());
    const chat = await NatsClient.connect([server.url]);
    await chat.recordEvents();
    cleanups.push(() => chat.close());
    const [frozen, killed, steady] = c.nodes;

    // Gateways a client or the HTTP load may use: alive and not frozen.
    const down = new Set<NodeProcess>();
    const live = () => c.alive.filter((n) => !down.has(n));
    const ledger = new Ledger();
    const users = Array.from({ length: 36 }, (_, i) => `frz-${i}-${msgId('u')}`);
    const withPc = (i: number) => i % 3 === 0;
    const clients: HeartbeatClient[] = [];
    cleanups.push(() => clients.forEach((cl) => cl.close()));
    for (const [i, user] of users.entries()) {
      // Every other user's devices take 3 s to come back (longer than the ack timeout): their messages are held.
      const opts = { gateways: live, ledger, reconnectDelayMs: i % 2 === 1 ? 3000 : 0 };
      clients.push(await HeartbeatClient.open(c.nodes[i % 3], { sub: user, dev: 'phone', kind: 'mobile', os: 'android' }, opts));
      if (withPc(i)) clients.push(await HeartbeatClient.open(c.nodes[(i + 1 + Math.floor(i / 3)) % 3], { sub: user, dev: 'pc', kind: 'pc' }, opts));
    }
    await Promise.all(users.map((u, i) => viewUntil(steady, u, (v) => v.devices.some((d) => d.online) && (!withPc(i) || v.pc.state === 'active'), `${u} connected`, 15_000)));
    const onFrozen = clients.filter((cl) => cl.on(frozen)).length;
    const frozenUsers = new Set(clients.filter((cl) => cl.on(frozen)).map((cl) => cl.claims.sub));
    const onKilled = clients.filter((cl) => cl.on(killed)).length;

    const sender = load({ users, chat, httpNodes: live, ledger, natsTimeoutMs: 2000, maxInFlight: 150, retries: 3 });
    let phase = 'load before the freeze';
    // Each phase is named as it starts, so a run that runs out of time says where it was (the test's own timeout,
    // above every phase's budget, gives no message).
    const enter = (name: string): void => {
      phase = name;
      console.log(`freeze test: ${name} at +${((Date.now() - t0Test) / 1000).toFixed(1)} s, accepted ${ledger.accepted.size}`);
    };
    enter(phase); // the cluster is up and every client connected
    let forFrozenUsers = 0; // accepted during the freeze for users with a socket on the frozen gateway
    try {
      await until(() => ledger.accepted.size >= 500, 20_000, phase);

      // Freeze one node: its sessions stall, its partitions are taken over once its leases lapse.
      enter('freeze');
      down.add(frozen);
      const atFreeze = ledger.accepted.size;
      const frozenAt = Date.now();
      frozen.proc.kill('SIGSTOP');
      try {
        await until(() => clients.every((cl) => !cl.on(frozen)), FREEZE_MS, 'clients of the frozen gateway reconnected elsewhere');
        const left = FREEZE_MS - (Date.now() - frozenAt);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
      } finally {
        frozen.proc.kill('SIGCONT');
      }
      const acceptedInFreeze = ledger.accepted.size;
      forFrozenUsers = [...ledger.accepted].slice(atFreeze, acceptedInFreeze).filter(([, u]) => frozenUsers.has(u)).length;
      down.delete(frozen);
      enter('the cluster to settle after SIGCONT');
      await c.awaitSettled(20_000);
      const atResume = ledger.accepted.size;
      enter('load after the freeze');
      await until(() => ledger.accepted.size >= atResume + 500, 20_000, phase);

      // Kill another node: its sockets close, clients reconnect on the two left; its partitions are taken over.
      enter('kill');
      down.add(killed);
      await killed.kill('SIGKILL');
      enter('the cluster to settle after SIGKILL');
      await c.awaitSettled(15_000, live());
      const atSettle = ledger.accepted.size;
      enter('load after the kill');
      await until(() => ledger.accepted.size >= atSettle + 500, 20_000, phase);
      enter('stopping the load');
      await sender.stop();
      enter('delivery');
      const t0 = Date.now();
      try {
        await expectAllDelivered(ledger, chat, 30_000, c);
      } finally {
        const routes: Record<string, number> = {};
        for (const e of chat.events) if (ledger.accepted.has(e.id)) routes[`${e.route}/${e.reason}`] = (routes[`${e.route}/${e.reason}`] ?? 0) + 1;
        console.log(
          `freeze+kill: accepted ${ledger.accepted.size} (${forFrozenUsers} during the freeze for the ${frozenUsers.size} users on the frozen gateway), not accepted ${ledger.rejected.length} (attempts sent again with the same id ${sender.retried}), ` +
            `delivered ${ledger.accepted.size - ledger.missing().length}, lost ${ledger.missing().length}, duplicates ${ledger.duplicates()}, ` +
            `sessions on the frozen / killed gateway ${onFrozen} / ${onKilled}, reconnects ${clients.reduce((n, cl) => n + cl.reconnects, 0)}, ` +
            `decisions by route ${JSON.stringify(routes)}, all delivered ${Date.now() - t0} ms after the load stopped`,
        );
      }
    } catch (e) {
      throw new Error(`${(e as Error).message} (during: ${phase})\n${c.logTail(15)}`);
    } finally {
      await sender.stop();
    }
    expect(ledger.missing()).toEqual([]);
    // The slow reconnects above must have made the owners hold messages (else this test did not show held at work).
    expect(chat.events.filter((e) => e.route === 'held' && ledger.accepted.has(e.id)).length).toBeGreaterThan(0);
  }, 240_000);
});
