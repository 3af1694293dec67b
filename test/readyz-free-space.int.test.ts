import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { DEFAULT_DATA_DIR_MIN_FREE_BYTES, parseConfig } from '../runtime/config.js';
import { startNode, type RunningNode } from '../runtime/start.js';
import type { StatFs } from '../store/free-space.js';
import { msgId, uniqueUser } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * An embedded node whose data dir's file system is nearly full (statfs figures injected through startNode's option):
 * `/readyz` answers 503 `unready` before any write fails, accepts still answer 202, and it turns ready again once
 * space is back. Before the free-space floor it answered 200 until the first write failed.
 */
describe('embedded node: /readyz and the data dir free-space floor', () => {
  let node: RunningNode | undefined;
  let dataDir: string | undefined;
  afterEach(async () => {
    await node?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    node = dataDir = undefined;
  });

  it('answers 503 unready below SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES, keeps accepting, and 200 once space is back', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'switchboard-free-space-'));
    let freeBytes = DEFAULT_DATA_DIR_MIN_FREE_BYTES - 1;
    const statfs: StatFs = async () => ({ bavail: freeBytes, bsize: 1 });
    const lines: any[] = [];
    const log = createLogger('info', new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb(); } }));
    const config = parseConfig({ SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_NODE_ID: 'free-space-node' });
    node = await startNode(config, { log, metrics: new Metrics({ defaultMetrics: false }), statfs });
    const url = `http://127.0.0.1:${node.port}`;
    const readyz = async () => {
      const res = await fetch(`${url}/readyz`);
      return { status: res.status, body: await res.json() };
    };

    expect(await readyz()).toEqual({ status: 503, body: { status: 'unready' } });
    // Readiness only: the durable write still decides an accept.
    const sent = await fetch(`${url}/v1/messages`, {
      method: 'POST', headers: { authorization: `Bearer ${node.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: msgId(), to: uniqueUser('space'), text: 'still accepted' }),
    });
    expect(sent.status).toBe(202);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain(`switchboard_data_dir_free_bytes{dir="${resolve(dataDir)}"} ${DEFAULT_DATA_DIR_MIN_FREE_BYTES - 1}`);
    expect(lines.some((l) => l.level === 40 && l.msg.startsWith('data dir free space below the floor'))).toBe(true);

    freeBytes = DEFAULT_DATA_DIR_MIN_FREE_BYTES;
    await until(async () => (await readyz()).status === 200, 5000, '/readyz 200 once space is back');
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready' } });
    expect(lines.some((l) => l.level === 30 && l.msg.startsWith('data dir free space above the floor again'))).toBe(true);
  });
});
