import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startRelay, type Relay } from '../bench/relay.js';

/**
 * The bare relays (bench/relay.ts), the baselines of `embedded_http_vs_relay` and of the context lines
 * `embedded_http_vs_durable_relay` and `durable_relay_p99_ms_at_10k`: with `durable` on, a 202 comes, and a frame goes
 * out, only once the message is in the file, and the messages of one turn share writes (group commit), as the node's do.
 */

let relay: Relay | undefined;
let dir: string | undefined;
let client: WebSocket | undefined;
afterEach(async () => {
  client?.terminate();
  client = undefined;
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

/** A token the relay reads without verifying (bench/relay.ts `claims`). */
const unsigned = (claims: object) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.x`;

/** Connects an active PC of `user` to the relay; resolves once the relay routes to it. */
async function activePc(port: number, user: string): Promise<{ ws: WebSocket; frames: { id: string; stored: boolean; writtenBodies: number }[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  const frames: { id: string; stored: boolean; writtenBodies: number }[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', token: unsigned({ sub: user, kind: 'pc' }) })));
    ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString());
      if (f.type === 'welcome') {
        ws.send(JSON.stringify({ type: 'presence', state: 'active' }));
        resolve();
      } else if (f.type === 'message') {
        // Read at the moment the frame arrived: the message must be in the file, and its write must have returned.
        frames.push({ id: f.id, stored: readFileSync(join(dir!, 'durable.log'), 'utf8').includes(`"id":"${f.id}"`), writtenBodies: relay!.durableStats!.bodies });
      }
    });
  });
  return { ws, frames };
}

describe('bench relay, in-process entry', () => {
  it('durable: sends each frame only once its message is in the file, the turn\'s messages sharing writes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'relay-'));
    relay = await startRelay(join(dir, 'durable.log'));
    const pc = await activePc(relay.port, 'u1');
    client = pc.ws;
    // The presence frame went after the welcome: wait until the relay routes to this PC.
    await expect.poll(() => relay!.accept({ id: 'probe', to: 'u1' }), { timeout: 5000 }).toBe(true);
    await expect.poll(() => pc.frames.length).toBeGreaterThan(0);
    relay.durable = true;
    const ids = Array.from({ length: 40 }, (_, i) => `d${i}`);
    expect(ids.map((id) => relay!.accept({ id, to: 'u1' }))).toEqual(ids.map(() => true));
    expect(relay.accept({ id: 'lost', to: 'nobody' })).toBe(false);
    await expect.poll(() => pc.frames.filter((f) => f.id.startsWith('d')).length, { timeout: 5000 }).toBe(ids.length);
    const durable = pc.frames.filter((f) => f.id.startsWith('d'));
    expect(durable.map((f) => f.id)).toEqual(ids);
    expect(durable.every((f) => f.stored)).toBe(true);
    // The turn's 40 messages share the first write, so each frame comes after a write that carried it returned.
    expect(durable.map((f, i) => f.writtenBodies > i)).toEqual(ids.map(() => true));
    expect(relay.durableStats!.bodies).toBe(ids.length); // nothing written for a user with no socket
    expect(relay.durableStats!.writes).toBeLessThan(ids.length);
  });

  it('durable without a file throws instead of sending what it cannot back', async () => {
    relay = await startRelay();
    relay.durable = true;
    expect(() => relay!.accept({ id: 'x', to: 'nobody' })).toThrow(/needs the file/);
  });
});
