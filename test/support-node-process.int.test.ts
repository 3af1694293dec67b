import { describe, expect, it } from 'vitest';
import { NodeProcess, NodeStartTimeout } from './support/node-process.js';

/** The test harness itself: a node that does not listen in time fails its start with its log, and is killed. */
describe('NodeProcess.start', () => {
  it('rejects with NodeStartTimeout, the log so far in the message, when the node does not listen in time', async () => {
    const started = await NodeProcess.start({ startTimeoutMs: 1 }).then((n) => n, (e: unknown) => e);
    expect(started).toBeInstanceOf(NodeStartTimeout);
    expect((started as Error).message).toMatch(/^node did not listen within 1 ms; killed\. Its log:/);
  });

  it('resolves with the port when it listens in time', async () => {
    const node = await NodeProcess.start();
    try {
      expect(node.port).toBeGreaterThan(0);
      expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    } finally {
      await node.stop();
      await node.removeData();
    }
  });
});
