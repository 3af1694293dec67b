import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, type Relay } from '../bench/relay.js';

/**
 * The bare relays' HTTP entry (bench/relay.ts), the baselines of `embedded_http_vs_relay` and of its context line
 * `embedded_http_vs_durable_relay`: with `durable` on, a 202 comes only once the body is in the file, and the bodies
 * of concurrent requests share writes (group commit), as the node's do.
 */

let relay: Relay | undefined;
let dir: string | undefined;
afterEach(async () => {
  await relay?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  relay = dir = undefined;
});

const post = (port: number, id: string) =>
  fetch(`http://127.0.0.1:${port}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, to: 'nobody' }) });

describe('bench relay, HTTP entry', () => {
  it('durable: answers 202 only once the body is in the file, concurrent bodies sharing writes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'relay-'));
    const file = join(dir, 'durable.log');
    relay = await startRelay(file);
    relay.durable = true;
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    const answers = await Promise.all(ids.map(async (id) => {
      const res = await post(relay!.port, id);
      // Read at the moment this answer arrived: its body must be there already.
      const onDisk = await readFile(file, 'utf8');
      return { status: res.status, body: (await res.json()) as { id: string }, stored: onDisk.includes(`"id":"${id}"`) };
    }));
    expect(answers.map((a) => a.status)).toEqual(ids.map(() => 202));
    expect(answers.every((a) => a.stored)).toBe(true);
    expect(answers.map((a) => a.body.id)).toEqual(ids);
    expect(relay.durableStats!.bodies).toBe(ids.length);
    expect(relay.durableStats!.writes).toBeLessThan(ids.length);
  });

  it('not durable: writes nothing; durable without a file answers 500 instead of a 202 it cannot back', async () => {
    relay = await startRelay();
    expect((await post(relay.port, 'a')).status).toBe(202);
    expect(relay.durableStats).toBeUndefined();
    relay.durable = true;
    expect((await post(relay.port, 'b')).status).toBe(500);
  });
});
