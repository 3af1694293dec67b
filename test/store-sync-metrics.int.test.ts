import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { parseConfig } from '../runtime/config.js';
import { startNode, type RunningNode } from '../runtime/start.js';
import { msgId, uniqueUser } from './support/scenario.js';
import { until } from './support/ws-client.js';

/** One sample's value in Prometheus text, or undefined when the series is not there. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/**
 * The embedded node's group commits on `/metrics`: every accept waits for an inbox sync and every hold for a held
 * store sync, so after N accepts of messages for a user with no device (held, section 4) both stores show syncs and
 * at least N records, and the sync wall times sum to more than nothing.
 */
describe('embedded node: store sync metrics', () => {
  let node: RunningNode | undefined;
  let dataDir: string | undefined;
  afterEach(async () => {
    await node?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    node = dataDir = undefined;
  });

  it('counts the inbox and held store group commits, their records and their wall time', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'switchboard-sync-metrics-'));
    const config = parseConfig({ SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_NODE_ID: 'sync-metrics-node' });
    node = await startNode(config, { log: createLogger('silent'), metrics: new Metrics({ defaultMetrics: false }) });
    const url = `http://127.0.0.1:${node.port}`;
    const metrics = async () => (await fetch(`${url}/metrics`)).text();
    const to = uniqueUser('sync');
    const answers = await Promise.all(Array.from({ length: 5 }, () => fetch(`${url}/v1/messages`, {
      method: 'POST', headers: { authorization: `Bearer ${node!.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: msgId(), to, text: 'for nobody yet' }),
    })));
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
    await until(async () => (sample(await metrics(), 'switchboard_held_messages') ?? 0) >= 5, 5000, 'five messages held');

    const text = await metrics();
    for (const store of ['inbox', 'held']) {
      const syncs = sample(text, `switchboard_store_sync_seconds_count{store="${store}"}`);
      const records = sample(text, `switchboard_store_synced_records_total{store="${store}"}`);
      expect(syncs, store).toBeGreaterThanOrEqual(1);
      expect(records, store).toBeGreaterThanOrEqual(5);
      expect(records!, store).toBeGreaterThanOrEqual(syncs!);
      expect(sample(text, `switchboard_store_sync_seconds_sum{store="${store}"}`), store).toBeGreaterThan(0);
    }
  });
});
