import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ProviderToken } from '../senders/apns-token.js';
import { TokenSlot } from '../senders/apns-token-slot.js';
import { withTokenSlots } from '../senders/batch-runner.js';
import { ManualClock } from './support/manual-clock.js';

/**
 * Apple: "APNs reports an error if you recreate your tokens more than once every 20 minutes" (429
 * TooManyProviderTokenUpdates). With SWITCHBOARD_SENDER_THREADS > 1 every thread signed its own token, N new tokens in
 * the same second; the threads of an app now share one through a slot in shared memory.
 */

const MIN = 60_000;

function keyFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'apns-slot-'));
  const file = join(dir, 'key.p8');
  writeFileSync(file, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return file;
}

describe('APNs provider token shared by the sender threads', () => {
  it('four threads asking at the same moment send one token, signed once', async () => {
    const file = keyFile();
    const slot = TokenSlot.create();
    const go = new SharedArrayBuffer(4);
    const script = fileURLToPath(new URL('./support/token-slot-worker.mjs', import.meta.url));
    const ready: Promise<void>[] = [];
    const answers = Array.from({ length: 4 }, () => {
      const w = new Worker(script, { workerData: { keyFile: file, slot, go } });
      ready.push(new Promise((resolve) => w.once('message', () => resolve())));
      return new Promise<{ jwt: string; signed: number }>((resolve, reject) => {
        w.on('message', (m: { ready?: true; jwt: string; signed: number }) => { if (!m.ready) { resolve(m); void w.terminate(); } });
        w.once('error', reject);
      });
    });
    await Promise.all(ready); // every thread is loaded and about to wait for the word
    Atomics.store(new Int32Array(go), 0, 1);
    Atomics.notify(new Int32Array(go), 0);
    const got = await Promise.all(answers);
    expect(new Set(got.map((a) => a.jwt)).size).toBe(1);
    expect(got.reduce((n, a) => n + a.signed, 0)).toBe(1);
  });

  it('in virtual time: renewed once per refresh for all, and a 403 ExpiredProviderToken seen by two threads signs once', () => {
    const file = keyFile();
    const clock = new ManualClock();
    const slot = new TokenSlot(TokenSlot.create());
    const a = ProviderToken.load(file, 'K', 'T', () => clock.now(), 50 * MIN, slot);
    const b = ProviderToken.load(file, 'K', 'T', () => clock.now(), 50 * MIN, slot);
    const first = a.current();
    expect(b.current()).toBe(first);
    clock.advance(50 * MIN);
    const second = b.current();
    expect(second).not.toBe(first);
    expect(a.current()).toBe(second);
    expect(a.signed + b.signed).toBe(2);
    // APNs refuses the token as expired to both threads' pushes: the first signs a new one, the second takes it.
    expect(a.expired(second)).toBe(true);
    expect(b.expired(second)).toBe(true);
    expect(b.current()).toBe(a.current());
    expect(a.signed + b.signed).toBe(3);
    // Refused again within 20 minutes (a clock off by hours): nobody signs again.
    const third = a.current();
    expect(b.expired(third)).toBe(false);
    expect(a.signed + b.signed).toBe(3);
  });

  it('the pool gives every app with APNs credentials a slot of its own, and none to the others', () => {
    const apns = { endpoint: 'https://api.push.apple.com', keyFile: 'k', keyId: 'K', teamId: 'T', topic: 'com.example' };
    const config = withTokenSlots({ apps: { default: { apns }, second: { apns: { ...apns, topic: 'com.example.two' } }, web: { fcm: { serviceAccountFile: 'f' } } } });
    expect(config.apps.default.apns?.tokenSlot).toBeInstanceOf(SharedArrayBuffer);
    expect(config.apps.second.apns?.tokenSlot).not.toBe(config.apps.default.apns?.tokenSlot);
    expect(config.apps.web).toEqual({ fcm: { serviceAccountFile: 'f' } });
  });
});
