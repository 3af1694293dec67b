import { afterEach, describe, expect, it } from 'vitest';
import { harness, until } from './support/actors-fakes.js';

/** Issue 9: a user actor holding a push token in memory learns when the registry removed it (section 3). */

type H = ReturnType<typeof harness>;
let h: H;
afterEach(() => h?.router.stop());

describe('user actor: token_removed', () => {
  it('stops pushing to a token the registry moved to another user', async () => {
    h = harness();
    h.send({ type: 'device_put', user: 'alice', device: 'phone', os: 'ios', token: 'tok-a' });
    h.send({ type: 'token_removed', user: 'alice', device: 'phone', token: 'tok-a' });
    expect((await h.view('alice')).devices).toEqual([{ device: 'phone', os: 'ios', online: false, hasToken: false }]);
    h.route('alice', 'm1');
    await until(() => h.settled.length === 1);
    expect(h.pushes.jobs).toEqual([]);
  });

  it('keeps a newer token: only the removed one is dropped', async () => {
    h = harness();
    h.send({ type: 'device_put', user: 'alice', device: 'phone', os: 'android', token: 'old' });
    h.send({ type: 'device_put', user: 'alice', device: 'phone', os: 'android', token: 'new' });
    h.send({ type: 'token_removed', user: 'alice', device: 'phone', token: 'old' });
    h.route('alice', 'm1');
    await until(() => h.pushes.jobs.length === 1);
    expect(h.pushes.jobs).toMatchObject([{ device: 'phone', vendor: 'fcm', token: 'new' }]);
  });
});
