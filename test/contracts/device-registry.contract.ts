import { afterEach, describe, expect, it } from 'vitest';
import type { DeviceRegistry } from '../../store/types.js';

export interface DeviceRegistryFixture {
  registry: DeviceRegistry;
  /** Closes nothing itself: the suite closes `registry` first, then reopens the same storage. */
  reopen?: () => Promise<DeviceRegistry>;
  cleanup: () => Promise<void>;
}

/** The behaviour every DeviceRegistry (embedded file log, JetStream KV) must share (PROTOCOL.md section 3). */
export function describeDeviceRegistryContract(name: string, make: () => Promise<DeviceRegistryFixture>): void {
  describe(`DeviceRegistry contract: ${name}`, () => {
    let fixture: DeviceRegistryFixture | undefined;
    const open = async (): Promise<DeviceRegistryFixture> => (fixture = await make());
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

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
  });
}
