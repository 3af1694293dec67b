import { afterEach, describe, expect, it } from 'vitest';
import { SEEN_RESOLUTION_MS, type DeviceRegistry, type TokenRemoval, type TokenRemovalListener } from '../../store/types.js';

export interface DeviceRegistryFixture {
  registry: DeviceRegistry;
  /** Closes nothing itself: the suite closes `registry` first, then reopens the same storage. */
  reopen?: () => Promise<DeviceRegistry>;
  cleanup: () => Promise<void>;
}

/** What the suite hands the fixture: the registry's clock and its token-removal listener (also for `reopen`). */
export interface DeviceRegistryOptions {
  now: () => number;
  onTokenRemoved: TokenRemovalListener;
}

// Valid tokens of each OS's shape (the registry itself does not check them; the edge does).
const T = 'a'.repeat(64);
const U = 'b'.repeat(64);

/** The behaviour every DeviceRegistry (embedded file log, JetStream KV) must share (PROTOCOL.md section 3). */
export function describeDeviceRegistryContract(name: string, make: (options: DeviceRegistryOptions) => Promise<DeviceRegistryFixture>): void {
  describe(`DeviceRegistry contract: ${name}`, () => {
    let fixture: DeviceRegistryFixture | undefined;
    let removed: TokenRemoval[] = [];
    let clock = 1_000_000;
    const open = async (): Promise<DeviceRegistryFixture> =>
      (fixture = await make({ now: () => clock, onTokenRemoved: (r) => removed.push(r) }));
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
      removed = [];
      clock = 1_000_000;
    });
    const holders = async (registry: DeviceRegistry, users: string[], token: string) => {
      const out: string[] = [];
      for (const u of users) for (const d of await registry.list(u)) if (d.token === token) out.push(`${u}/${d.device}`);
      return out;
    };

    it('lists nothing for an unknown user', async () => {
      const { registry } = await open();
      expect(await registry.list('nobody')).toEqual([]);
    });

    it('stores a put and returns the stored record', async () => {
      const { registry } = await open();
      const rec = await registry.put('u1', 'phone', { os: 'ios', token: 'tok-1', app: 'beta' });
      expect(rec).toMatchObject({ device: 'phone', os: 'ios', token: 'tok-1', app: 'beta' });
      expect(typeof rec.updatedAt).toBe('number');
      expect(await registry.list('u1')).toEqual([rec]);
    });

    it('keeps several devices per user and replaces a device on a second put', async () => {
      const { registry } = await open();
      await registry.put('u1', 'phone', { os: 'android', token: 'old' });
      await registry.put('u1', 'tablet', { os: 'harmony', token: 't2' });
      await registry.put('u1', 'phone', { os: 'android', token: 'new' });
      await registry.put('u2', 'phone', { os: 'web', token: '{"endpoint":"x"}' });
      const devices = (await registry.list('u1')).sort((a, b) => a.device.localeCompare(b.device));
      expect(devices.map((d) => [d.device, d.token])).toEqual([['phone', 'new'], ['tablet', 't2']]);
      expect((await registry.list('u2')).map((d) => d.device)).toEqual(['phone']);
    });

    it('removes a device and says whether there was one', async () => {
      const { registry } = await open();
      await registry.put('u1', 'phone', { os: 'ios', token: 't' });
      expect(await registry.remove('u1', 'phone')).toBe(true);
      expect(await registry.remove('u1', 'phone')).toBe(false);
      expect(await registry.list('u1')).toEqual([]);
    });

    it('clears a token only while it still equals the given one', async () => {
      const { registry } = await open();
      await registry.put('u1', 'phone', { os: 'ios', token: 'dead' });
      await registry.put('u1', 'phone', { os: 'ios', token: 'fresh' });
      expect(await registry.clearToken('u1', 'phone', 'dead')).toBe(false);
      expect((await registry.list('u1'))[0].token).toBe('fresh');
      expect(await registry.clearToken('u1', 'phone', 'fresh')).toBe(true);
      const [rec] = await registry.list('u1');
      expect(rec.device).toBe('phone');
      expect(rec.token).toBeUndefined();
      expect(await registry.clearToken('u1', 'ghost', 'x')).toBe(false);
    });

    it('returns copies: mutating a listed record changes nothing stored', async () => {
      const { registry } = await open();
      await registry.put('u1', 'phone', { os: 'ios', token: 't' });
      (await registry.list('u1'))[0].token = 'mutated';
      expect((await registry.list('u1'))[0].token).toBe('t');
    });

    it('one token, one device: storing a token for bob takes it from alice and reports it moved (section 3)', async () => {
      const { registry } = await open();
      await registry.put('alice', 'phone', { os: 'ios', token: T });
      await registry.put('bob', 'phone', { os: 'ios', token: T });
      expect(await holders(registry, ['alice', 'bob'], T)).toEqual(['bob/phone']);
      expect(await registry.list('alice')).toEqual([expect.objectContaining({ device: 'phone', os: 'ios' })]);
      expect((await registry.list('alice'))[0].token).toBeUndefined();
      expect(removed).toEqual([{ user: 'alice', device: 'phone', os: 'ios', token: T, reason: 'moved' }]);
    });

    it('one token, one device: the same token under two devices of one user stays on the newer only', async () => {
      const { registry } = await open();
      await registry.put('alice', 'phone', { os: 'android', token: 'fcm-1' });
      await registry.put('alice', 'tablet', { os: 'android', token: 'fcm-1' });
      expect(await holders(registry, ['alice'], 'fcm-1')).toEqual(['alice/tablet']);
      expect(removed.map((r) => [r.device, r.reason])).toEqual([['phone', 'moved']]);
    });

    it('re-storing a token on its own device reports nothing; a different token in its place reports the old one replaced (section 3)', async () => {
      const { registry } = await open();
      await registry.put('alice', 'phone', { os: 'ios', token: T });
      await registry.put('alice', 'phone', { os: 'ios', token: T });
      expect(removed).toEqual([]);
      await registry.put('alice', 'phone', { os: 'ios', token: U });
      expect(removed).toEqual([{ user: 'alice', device: 'phone', os: 'ios', token: T, reason: 'replaced' }]);
      await registry.put('alice', 'phone', { os: 'ios', token: U });
      // T is free again: storing it elsewhere moves nothing.
      await registry.put('bob', 'phone', { os: 'ios', token: T });
      expect(removed).toHaveLength(1);
      expect(await holders(registry, ['alice', 'bob'], U)).toEqual(['alice/phone']);
      expect(await holders(registry, ['alice', 'bob'], T)).toEqual(['bob/phone']);
    });

    it('a device taking a token from another device reports both: the other\'s moved, its own old one replaced', async () => {
      const { registry } = await open();
      await registry.put('alice', 'phone', { os: 'android', token: 'fcm-old' });
      await registry.put('bob', 'phone', { os: 'android', token: 'fcm-shared' });
      await registry.put('alice', 'phone', { os: 'android', token: 'fcm-shared' });
      const seen = removed.map((r) => `${r.user}/${r.device}/${r.token}/${r.reason}`).sort();
      expect(seen).toEqual(['alice/phone/fcm-old/replaced', 'bob/phone/fcm-shared/moved']);
      // The replaced token is free: storing it elsewhere moves nothing.
      await registry.put('carol', 'phone', { os: 'android', token: 'fcm-old' });
      expect(removed).toHaveLength(2);
    });

    it('a token moved away and back ends on the last device it was stored for', async () => {
      const { registry } = await open();
      await registry.put('alice', 'phone', { os: 'ios', token: T });
      await registry.put('bob', 'phone', { os: 'ios', token: T });
      await registry.put('alice', 'phone', { os: 'ios', token: T });
      expect(await holders(registry, ['alice', 'bob'], T)).toEqual(['alice/phone']);
      expect(removed.map((r) => `${r.user}/${r.reason}`)).toEqual(['alice/moved', 'bob/moved']);
    });

    it('reports removals: deleted, dead, unregistered; nothing for a token that is not there', async () => {
      const { registry } = await open();
      await registry.put('u1', 'phone', { os: 'ios', token: T });
      await registry.put('u1', 'tablet', { os: 'android', token: 'fcm-2' });
      await registry.put('u1', 'web', { os: 'web', token: '{"endpoint":"https://fcm.googleapis.com/x"}' });
      await registry.remove('u1', 'phone');
      await registry.clearToken('u1', 'tablet', 'other');
      await registry.clearToken('u1', 'tablet', 'fcm-2');
      await registry.clearToken('u1', 'web', '{"endpoint":"https://fcm.googleapis.com/x"}', 'unregistered');
      expect(removed.map((r) => [r.device, r.os, r.reason])).toEqual([['phone', 'ios', 'deleted'], ['tablet', 'android', 'dead'], ['web', 'web', 'unregistered']]);
      // A token that was removed can be stored elsewhere without a "moved" report.
      await registry.put('u2', 'phone', { os: 'android', token: 'fcm-2' });
      expect(removed).toHaveLength(3);
    });

    it('keeps when a token was last seen, and prunes tokens neither stored nor seen since a time', async () => {
      const { registry } = await open();
      await registry.put('u1', 'old', { os: 'android', token: 'old-tok' });
      await registry.put('u1', 'seen', { os: 'android', token: 'seen-tok' });
      clock += 2 * SEEN_RESOLUTION_MS;
      await registry.seen('u1', 'seen', clock);
      await registry.seen('u1', 'ghost', clock); // no such device: nothing happens
      expect((await registry.list('u1')).find((d) => d.device === 'seen')?.seenAt).toBe(clock);
      await registry.put('u2', 'fresh', { os: 'ios', token: T });
      expect(await registry.prune(clock - 1)).toBe(1);
      expect(removed).toEqual([{ user: 'u1', device: 'old', os: 'android', token: 'old-tok', reason: 'pruned' }]);
      const u1 = await registry.list('u1');
      expect(u1.map((d) => [d.device, d.token])).toEqual(expect.arrayContaining([['old', undefined], ['seen', 'seen-tok']]));
      expect(await registry.prune(clock - 1)).toBe(0);
      // A seen time within the resolution of the stored one is not written again.
      const before = (await registry.list('u2'))[0];
      await registry.seen('u2', 'fresh', clock + 1);
      expect((await registry.list('u2'))[0]).toEqual(before);
    });

    it('keeps every acknowledged change across a reopen', async (ctx) => {
      const f = await open();
      if (f.reopen === undefined) return ctx.skip();
      await f.registry.put('u1', 'phone', { os: 'ios', token: 't1' });
      await f.registry.put('u1', 'tablet', { os: 'android', token: 't2' });
      await f.registry.put('u2', 'phone', { os: 'harmony', token: 't3' });
      await f.registry.remove('u1', 'tablet');
      await f.registry.clearToken('u2', 'phone', 't3');
      const before = [await f.registry.list('u1'), await f.registry.list('u2')];
      await f.registry.close();
      const again = await f.reopen();
      expect([await again.list('u1'), await again.list('u2')]).toEqual(before);
      await again.close();
    });

    it('keeps who holds a token across a reopen: a later put elsewhere still moves it', async (ctx) => {
      const f = await open();
      if (f.reopen === undefined) return ctx.skip();
      await f.registry.put('alice', 'phone', { os: 'ios', token: T });
      clock += 5;
      await f.registry.seen('alice', 'phone', clock + 2 * SEEN_RESOLUTION_MS);
      await f.registry.close();
      const again = await f.reopen();
      expect((await again.list('alice'))[0].seenAt).toBe(clock + 2 * SEEN_RESOLUTION_MS);
      await again.put('bob', 'phone', { os: 'ios', token: T });
      expect(await holders(again, ['alice', 'bob'], T)).toEqual(['bob/phone']);
      expect(removed.map((r) => `${r.user}/${r.reason}`)).toEqual(['alice/moved']);
      await again.close();
    });
  });
}
