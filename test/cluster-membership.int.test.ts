import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeKey } from '../cluster/membership.js';
import { Cluster, Ledger, NatsClient } from './support/cluster.js';
import { NodeProcess, runCli } from './support/node-process.js';
import { NatsServer } from './support/nats-server.js';
import { msgId, Peer, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * Join and leave (issue 4): a third node joining takes its share within seconds; a node leaving gracefully (SIGTERM)
 * under a steady trickle hands its partitions to the others and no accepted message goes undelivered.
 */

const P = 16;
let server: NatsServer;
let cluster: Cluster;
let chat: NatsClient;

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 2, partitions: P });
  chat = await NatsClient.connect([server.url]);
  await chat.recordEvents();
}, 60_000);

afterAll(async () => {
  await chat?.close();
  await cluster?.dispose();
  await server?.dispose();
});

describe('cluster membership', () => {
  it('rebalances when a third node joins: each <= ceil(P/3), sum P', async () => {
    const before = await cluster.awaitSettled();
    for (const n of before.values()) expect(n).toBeLessThanOrEqual(Math.ceil(P / 2));
    const joinedAt = Date.now();
    await cluster.add();
    const after = await cluster.awaitSettled(10_000);
    console.log(`join settled in ${Date.now() - joinedAt} ms (incl. process start): ${JSON.stringify([...after])}`);
    expect(after.size).toBe(3);
    for (const n of after.values()) expect(n).toBeLessThanOrEqual(Math.ceil(P / 3));
    expect([...after.values()].reduce((a, b) => a + b, 0)).toBe(P);
  }, 30_000);

  it('hands off on SIGTERM under a steady trickle: the other two own all, every accepted message arrives, exit 0', async () => {
    const [a, b, leaving] = cluster.nodes;
    const leavingId = cluster.id(leaving);
    // Users spread over all partitions; phones on the nodes that stay, so each user stays reachable.
    const ledger = new Ledger();
    const users: string[] = [];
    const peers: Peer[] = [];
    for (let i = 0; i < 24; i++) users.push(`leave-${i}-${msgId('u')}`);
    const owners = await Promise.all(users.map((u) => cluster.ownerOf(u, a)));
    expect(owners.filter((o) => o === leavingId).length).toBeGreaterThan(0);
    for (const [i, user] of users.entries()) {
      const peer = await Peer.open(i % 2 ? a : b, { sub: user, dev: 'phone', kind: 'mobile', os: 'android' });
      peer.onMessage((id) => ledger.arrive(id)); // held replays right after the welcome included
      peers.push(peer);
    }
    try {
      await Promise.all(users.map((u) => viewUntil(a, u, (v) => v.devices.some((d) => d.online), `${u} online`)));

      let sending = true;
      let n = 0;
      /** HTTP sends go to the two nodes that stay: they stay ready through the handoff and refuse nothing. */
      const refusedByStayingNodes: string[] = [];
      const trickle = (async () => {
        while (sending) {
          const user = users[n % users.length];
          const id = `t-${n++}-${msgId()}`;
          try {
            const useHttp = n % 2 === 0;
            const ok = useHttp
              ? (await (n % 4 === 0 ? a : b).send({ id, to: user, text: 'x' })).status === 202
              : (await chat.send({ id, to: user, text: 'x' }, { timeoutMs: 3000 })).status === 'accepted';
            if (ok) ledger.accepted.set(id, user);
            else ledger.rejected.push(id);
            if (!ok && useHttp) refusedByStayingNodes.push(id);
          } catch {
            ledger.rejected.push(id);
          }
          await new Promise((r) => setTimeout(r, 20)); // pacing of the trickle, ~40/s
        }
      })();

      await until(() => ledger.accepted.size >= 40, 10_000, 'trickle started');
      const stoppedAt = Date.now();
      const exit = await leaving.stop();
      console.log(`SIGTERM -> exit in ${Date.now() - stoppedAt} ms`);
      expect(exit).toEqual({ code: 0, signal: null });
      const after = await cluster.awaitSettled(10_000, [a, b]);
      expect([...after.values()].reduce((x, y) => x + y, 0)).toBe(P);
      for (const v of after.values()) expect(v).toBeLessThanOrEqual(Math.ceil(P / 2));
      const acceptedAtSettle = ledger.accepted.size;
      await until(() => ledger.accepted.size >= acceptedAtSettle + 40, 10_000, 'trickle continues after the leave');
      sending = false;
      await trickle;

      try {
        await until(() => ledger.missing().length === 0, 15_000, 'every accepted message delivered');
      } catch (e) {
        const missing = ledger.missing();
        const detail = missing.slice(0, 10).map((id) => ({ id, user: ledger.accepted.get(id), events: chat.eventsFor(id).map((ev) => `${ev.node}:${ev.route}/${ev.reason}`) }));
        throw new Error(`${(e as Error).message}: ${missing.length}/${ledger.accepted.size} missing, e.g. ${JSON.stringify(detail)}`);
      }
      console.log(`leave: accepted ${ledger.accepted.size}, not accepted ${ledger.rejected.length}, duplicates ${ledger.duplicates()}`);
      expect(refusedByStayingNodes).toEqual([]);
    } finally {
      for (const p of peers) p.close();
    }
  }, 90_000);

  it('SWITCHBOARD_SHUTDOWN_DELAY_MS: after SIGTERM /readyz answers 503 stopping at once while sends are still accepted; then it hands off and exits 0', async () => {
    const delayed = await cluster.add({ SWITCHBOARD_SHUTDOWN_DELAY_MS: '4000' });
    await cluster.awaitSettled(15_000);
    const readyz = async () => (await delayed.http('GET', '/readyz', undefined, { auth: false }));
    expect((await readyz()).status).toBe(200);
    const exit = delayed.stop();
    await until(async () => (await readyz()).status === 503, 3000, '/readyz 503');
    expect((await readyz()).body).toEqual({ status: 'stopping' });
    // A load balancer has not taken it out yet: what it still sends there is accepted, not refused.
    const answer = await delayed.send({ id: `delay-${msgId()}`, to: `delay-user-${msgId('u')}`, text: 'during the delay' });
    expect(answer.status).toBe(202);
    expect(await exit, delayed.lines.slice(-20).join('\n')).toEqual({ code: 0, signal: null });
    await cluster.awaitSettled(15_000);
  }, 60_000);

  it('a running node that hears a node which started before it with another SWITCHBOARD_PARTITIONS stops with exit 2 naming the variable', async () => {
    // Two nodes started together can both pass the check at start (neither has beaten yet); the later one then hears
    // the other's beat. Planted here: the beat of a node that started a minute before, beating on with 16 partitions.
    const prefix = `race${Date.now().toString(36)}`; // a cluster of its own on this server
    const node = await NodeProcess.start({
      apiKey: cluster.apiKey, jwtSecret: cluster.jwtSecret,
      env: { SWITCHBOARD_NATS_URL: server.url, SWITCHBOARD_SUBJECT_PREFIX: prefix, SWITCHBOARD_NODE_ID: 'race-late', SWITCHBOARD_PARTITIONS: '8' },
    });
    const kv = await new Kvm(chat.nc).open(`${prefix}_nodes`);
    const startedAt = Date.now() - 60_000;
    const beat = () => kv.put(nodeKey('race-early'), JSON.stringify({ node: 'race-early', at: Date.now(), instance: 'planted', startedAt, roles: ['gateway', 'router', 'sender'], partitions: 16 }));
    const beating = setInterval(() => void beat().catch(() => undefined), 500);
    try {
      await beat();
      const exit = await Promise.race([node.exited(), new Promise<'running'>((r) => setTimeout(() => r('running'), 15_000))]);
      expect(exit).toEqual({ code: 2, signal: null });
      expect(node.lines.join('\n')).toContain('switchboard: SWITCHBOARD_PARTITIONS is 8 but live node race-early uses 16: give every node the same value');
      expect(node.lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true); // a graceful stop first: its leases handed back
    } finally {
      clearInterval(beating);
      await node.stop();
      await node.removeData();
    }
  }, 60_000);

  it('refuses a second live process under a node id (exit 2); a node killed and restarted at once under its id starts', async () => {
    const [first] = cluster.alive;
    const id = cluster.id(first);
    const env = {
      SWITCHBOARD_NATS_URL: server.url, SWITCHBOARD_NODE_ID: id, SWITCHBOARD_PARTITIONS: String(P), SWITCHBOARD_PORT: '0',
      SWITCHBOARD_JWT_SECRET: cluster.jwtSecret, SWITCHBOARD_API_KEY: cluster.apiKey,
    };
    const twin = await runCli(env);
    expect(twin.code).toBe(2);
    expect(twin.stderr).toContain(`node id ${id} is in use by another live node`);
    expect(await cluster.awaitSettled(10_000)).toHaveProperty('size', cluster.alive.length); // the first one kept its share
    // kill -9 and start again under the same id at once: its last heartbeat is fresh, but nobody writes another.
    await first.kill('SIGKILL');
    const again = await NodeProcess.start({ apiKey: cluster.apiKey, jwtSecret: cluster.jwtSecret, env: { SWITCHBOARD_NATS_URL: server.url, SWITCHBOARD_NODE_ID: id, SWITCHBOARD_PARTITIONS: String(P) } });
    try {
      await until(async () => (await again.http('GET', '/readyz', undefined, { auth: false })).status === 200, 15_000, 'the restarted node ready');
    } finally {
      await again.stop();
    }
  }, 60_000);
});
