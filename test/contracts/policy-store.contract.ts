import { afterEach, describe, expect, it } from 'vitest';
import type { UserPolicy } from '../../protocol/index.js';
import type { PolicyStore } from '../../store/types.js';

export interface PolicyStoreFixture {
  store: PolicyStore;
  /** Opens the same storage again (a restart, or another node); the suite closes `store` first. */
  reopen: () => Promise<PolicyStore>;
  cleanup: () => Promise<void>;
}

const FULL: UserPolicy = { mobile: 'never', idleAfterSeconds: 120, pushDelaySeconds: 30, quietHours: { start: '22:00', end: '07:00', tz: 'Europe/Berlin' } };

/** The behaviour every PolicyStore (embedded file log, JetStream KV) must share (PROTOCOL.md section 3, `…/policy`). */
export function describePolicyStoreContract(name: string, make: () => Promise<PolicyStoreFixture>): void {
  describe(`PolicyStore contract: ${name}`, () => {
    let fixture: PolicyStoreFixture | undefined;
    const open = async (): Promise<PolicyStoreFixture> => (fixture = await make());
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

    it('has no policy for a user who never set one', async () => {
      const { store } = await open();
      expect(await store.get('nobody')).toBeUndefined();
    });

    it('returns what was put, every field', async () => {
      const { store } = await open();
      await store.put('u1', FULL);
      expect(await store.get('u1')).toEqual(FULL);
    });

    it('replaces the whole policy on a second put (fields left out are gone)', async () => {
      const { store } = await open();
      await store.put('u1', FULL);
      await store.put('u1', { mobile: 'always' });
      expect(await store.get('u1')).toEqual({ mobile: 'always' });
    });

    it('keeps users apart, whatever characters their ids hold', async () => {
      const { store } = await open();
      await store.put('a:b@c/d e', { mobile: 'always' });
      await store.put('ünï 😀', { mobile: 'never' });
      expect(await store.get('a:b@c/d e')).toEqual({ mobile: 'always' });
      expect(await store.get('ünï 😀')).toEqual({ mobile: 'never' });
      expect(await store.get('a:b@c/d')).toBeUndefined();
    });

    it('a returned policy is a copy: changing it changes nothing stored', async () => {
      const { store } = await open();
      await store.put('u1', FULL);
      const got = (await store.get('u1'))!;
      got.mobile = 'always';
      got.quietHours!.start = '00:00';
      expect(await store.get('u1')).toEqual(FULL);
    });

    it('is durable: a reopened store has the last policy of each user', async () => {
      const { store, reopen } = await open();
      await store.put('u1', { mobile: 'always' });
      await store.put('u1', FULL);
      await store.put('u2', { mobile: 'always', idleAfterSeconds: 30 });
      await store.close();
      const again = await reopen();
      expect(await again.get('u1')).toEqual(FULL);
      expect(await again.get('u2')).toEqual({ mobile: 'always', idleAfterSeconds: 30 });
    });
  });
}
