import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/browser.js';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { until } from './support/ws-client.js';

/**
 * Issue 12, dashboard in a cluster: the figures carry the live nodes, every partition's owner, and the lease
 * takeovers a node made after another one crashed. Real nats-server, real nodes, a real SIGKILL.
 */
const P = 8;

describe('dashboard figures in a cluster', () => {
  let server: NatsServer;
  let cluster: Cluster;

  beforeAll(async () => {
    server = await NatsServer.start();
    cluster = await Cluster.start({ natsUrls: [server.url], nodes: 2, partitions: P });
  }, 60_000);

  afterAll(async () => {
    await cluster?.dispose();
    await server?.dispose();
  });

  const figures = async (i: number) => (await cluster.nodes[i].http('GET', '/v1/dashboard')).body;

  it('shows the nodes and who owns each partition', async () => {
    const [a, b] = cluster.nodes.map((n) => cluster.id(n));
    const f = await figures(0);
    expect(f.cluster.nodes).toEqual([a, b].sort());
    expect(f.cluster.partitions).toHaveLength(P);
    const owned = await cluster.ownedByNode();
    for (const id of [a, b]) expect(f.cluster.partitions.filter((p: { owner: string }) => p.owner === id)).toHaveLength(owned.get(id)!);
    expect(f.ownedPartitions).toBe(owned.get(a));
    expect(f.leaseTakeovers).toBe(0);
  });

  it('sums the figures of every node for the whole cluster', async () => {
    const N = 40;
    for (let i = 0; i < N; i++) expect((await cluster.nodes[0].http('POST', '/v1/messages', { id: `c-${i}`, to: `cu-${i}`, text: 'x' })).status).toBe(202);
    const routedOf = (rows: { total: number }[]) => rows.reduce((s, r) => s + r.total, 0);
    await until(async () => routedOf((await figures(0)).cluster.totals.routed) === N, 10_000, 'every message routed somewhere');
    const f = await figures(0);
    expect(f.cluster.totals.answered).toBe(2);
    expect(routedOf(f.cluster.totals.accepted)).toBe(N); // all accepted by node 0
    // Node 0 routed only the users it owns; the cluster total has them all.
    const own = routedOf(f.routed);
    expect(own).toBeGreaterThan(0);
    expect(own).toBeLessThan(N);
    expect(f.cluster.totals.ownedPartitions).toBe(P);
    // The other node sees the same totals.
    await until(async () => routedOf((await figures(1)).cluster.totals.routed) === N, 10_000, 'the same totals on node 1');
  });

  it('the page switches between this node and the whole cluster', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      await page.goto(`${cluster.nodes[0].url}/dashboard`);
      await page.getByLabel('API key').fill(cluster.apiKey);
      await page.getByLabel('API key').press('Enter');
      await page.getByRole('radio', { name: /the whole cluster/ }).check(); // shown once the cluster totals arrive
      await page.locator('#answered').filter({ hasText: '2 nodes answered' }).waitFor();
      const total = async () => (await page.locator('#routes tbody tr td:last-child').allTextContents()).reduce((s, t) => s + Number(t), 0);
      await until(async () => (await total()) === 40, 5000, 'the cluster total of routed messages on the page');
      expect(await page.locator('#partitions [role=listitem]').count()).toBe(P);
      await mkdir(join(process.cwd(), 'test-artifacts', 'dashboard'), { recursive: true });
      await page.screenshot({ path: join(process.cwd(), 'test-artifacts', 'dashboard', 'cluster.png'), fullPage: true });
      await page.getByRole('radio', { name: 'this node' }).check();
      await until(async () => (await total()) < 40, 5000, 'the node total on the page');
    } finally {
      await browser.close();
    }
  });

  it('counts the takeovers after a node is killed', async () => {
    const [survivor, victim] = cluster.nodes;
    const lost = (await cluster.ownedByNode()).get(cluster.id(victim))!;
    expect(lost).toBeGreaterThan(0);
    await victim.kill('SIGKILL');
    await until(async () => (await figures(0)).ownedPartitions === P, 20_000, 'the survivor to own every partition');
    const f = await figures(0);
    expect(f.leaseTakeovers).toBe(lost);
    expect(f.cluster.nodes).toEqual([cluster.id(survivor)]);
    expect(new Set(f.cluster.partitions.map((p: { owner: string }) => p.owner))).toEqual(new Set([cluster.id(survivor)]));
  }, 40_000);
});
