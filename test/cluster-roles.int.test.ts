import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, ownedPartitions } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { BIN } from './support/node-process.js';
import { msgId, Peer, uniqueUser, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * SWITCHBOARD_ROLES (PROTOCOL.md section 1) is honoured: in the cluster a `gateway`-only node holds clients and takes
 * messages but owns no partition; `router` goes with `sender`; the embedded node needs both.
 */
let server: NatsServer;
let cluster: Cluster;

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 1, partitions: 8 });
}, 60_000);

afterAll(async () => {
  await cluster?.dispose();
  await server?.dispose();
});

describe('SWITCHBOARD_ROLES', () => {
  it('a gateway-only node owns no partition, yet its clients get their messages and it takes sends', async () => {
    const gateway = await cluster.add({ SWITCHBOARD_ROLES: 'gateway' });
    const [router] = cluster.nodes;
    // The router keeps every partition: the gateway-only node is not part of the assignment.
    await cluster.awaitSettled(15_000, [router]);
    expect(await ownedPartitions(router)).toBe(8);
    expect(await ownedPartitions(gateway)).toBe(0);

    const user = uniqueUser('roles');
    const pc = await Peer.open(gateway, { sub: user, dev: 'pc', kind: 'pc' });
    try {
      pc.send({ type: 'presence', state: 'active' });
      await viewUntil(gateway, user, (v) => v.pc.state === 'active', 'PC active through the gateway-only node');
      const id = msgId('roles');
      expect((await gateway.send({ id, to: user, text: 'via the gateway-only node' })).status).toBe(202);
      await pc.message(id);
    } finally {
      pc.close();
    }
  });

  it("a gateway-only node's dashboard shows who owns each partition, though it owns none", async () => {
    const gateway = await cluster.add({ SWITCHBOARD_ROLES: 'gateway' });
    const [router] = cluster.nodes;
    await cluster.awaitSettled(15_000, [router]);
    // It takes no lease, so it only knows the owners by watching the leases bucket (it showed '' for all).
    const owners = async () => ((await gateway.http('GET', '/v1/dashboard')).body.cluster.partitions as { owner: string }[]).map((p) => p.owner);
    await until(async () => (await owners()).every((o) => o === cluster.id(router)), 10_000, 'every partition owned by the router on the gateway-only dashboard');
    expect(await owners()).toHaveLength(8);
  });

  it('a router-only node answers /healthz, /readyz and /metrics on its port, and nothing else there', async () => {
    const router = await cluster.add({ SWITCHBOARD_ROLES: 'router,sender' });
    expect(router.port).toBeGreaterThan(0); // it bound SWITCHBOARD_PORT (0: a free one); it had no listener at all
    expect(await router.http('GET', '/healthz', undefined, { auth: false })).toMatchObject({ status: 200, body: { status: 'ok' } });
    await until(async () => (await router.http('GET', '/readyz', undefined, { auth: false })).status === 200, 15_000, 'the router-only node ready once it holds its share');
    expect((await router.http('GET', '/readyz', undefined, { auth: false })).body).toEqual({ status: 'ready' });
    const metrics = await router.http('GET', '/metrics', undefined, { auth: false });
    expect(metrics.status).toBe(200);
    expect(String(metrics.body)).toMatch(/^switchboard_owned_partitions \d+$/m); // a router's own figures
    const api = await router.http('POST', '/v1/messages', { id: msgId('router-only'), to: uniqueUser('router-only') });
    expect(api).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } }); // the API is the gateway role's
    expect((await router.http('POST', '/readyz', undefined, { auth: false })).status).toBe(405);
  });

  it('refuses a cluster node with router but no sender, an embedded node without router, and replicas a lone server cannot keep, with exit 2 naming the variable', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-roles-'));
    try {
      const base = { PATH: process.env.PATH, SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_LOG_LEVEL: 'silent' };
      const embedded = spawnSync(process.execPath, [BIN, 'start'], { env: { ...base, SWITCHBOARD_ROLES: 'gateway' }, encoding: 'utf8', timeout: 20_000 });
      expect(embedded.status).toBe(2);
      expect(embedded.stderr).toMatch(/SWITCHBOARD_ROLES must be a list holding router and sender without SWITCHBOARD_NATS_URL/);
      const clustered = spawnSync(process.execPath, [BIN, 'start'], {
        env: { ...base, SWITCHBOARD_ROLES: 'gateway,router', SWITCHBOARD_NATS_URL: server.url, SWITCHBOARD_JWT_SECRET: 'x'.repeat(32), SWITCHBOARD_API_KEY: 'y'.repeat(32) },
        encoding: 'utf8', timeout: 20_000,
      });
      expect(clustered.status).toBe(2);
      expect(clustered.stderr).toMatch(/SWITCHBOARD_ROLES must be router and sender together/);
      // Replicas > 1 on a server whose JetStream is not clustered: refused at once, not retried for 30 s then exit 1.
      const replicated = spawnSync(process.execPath, [BIN, 'start'], {
        env: { ...base, SWITCHBOARD_NATS_URL: server.url, SWITCHBOARD_NATS_REPLICAS: '3', SWITCHBOARD_JWT_SECRET: 'x'.repeat(32), SWITCHBOARD_API_KEY: 'y'.repeat(32) },
        encoding: 'utf8', timeout: 20_000,
      });
      expect(replicated.status).toBe(2);
      expect(replicated.stderr).toMatch(/SWITCHBOARD_NATS_REPLICAS is 3 but the NATS server's JetStream is not clustered/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
