import { afterEach, describe, expect, it } from 'vitest';
import { metric } from './support/cluster.js';
import { NodeProcess } from './support/node-process.js';
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
  let node: NodeProcess | undefined;
  afterEach(async () => {
    await node?.stop();
    await node?.removeData();
    node = undefined;
  });

  it('counts the inbox and held store group commits, their records and their wall time', async () => {
    const n = (node = await NodeProcess.start());
    const to = uniqueUser('sync');
    const answers = await Promise.all(Array.from({ length: 5 }, () => n.send({ id: msgId(), to, text: 'for nobody yet' })));
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
    await until(async () => (await metric(n, 'switchboard_held_messages')) >= 5, 5000, 'five messages held');

    const text = await (await fetch(`${n.url}/metrics`)).text();
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
