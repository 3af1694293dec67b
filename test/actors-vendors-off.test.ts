import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../runtime/config.js';
import { loadSenderConfig, logVendorsOn } from '../runtime/sender-config.js';
import { canPushWith } from '../senders/vendor-config.js';
import { harness, until } from './support/actors-fakes.js';

/**
 * Issue 9 part 8, PROTOCOL.md section 4: a device whose vendor has no credentials is not reachable by push (the
 * message goes to the PC fallback or is held, no push "fails"); deliveries count only pushes the vendor accepted.
 */

type H = ReturnType<typeof harness>;
let h: H;
afterEach(() => h?.router.stop());

const counter = async (h: H, name: 'deliveries' | 'pushOutcomes') =>
  Object.fromEntries((await h.metrics[name].get()).values.map((v) => [Object.values(v.labels).join('/'), v.value]));

describe('vendors without credentials', () => {
  it('a locked PC gets the message when the phone\'s vendor is off, and no push is attempted', async () => {
    // FCM configured for the default app, APNs not.
    h = harness({ canPush: canPushWith({ apps: { default: { fcm: { serviceAccountFile: 'sa.json' } } } }) });
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'a'.repeat(64) });
    h.openPc('u1', 'pc', 's1', 'gw1', false);
    h.presence('u1', 'pc', 's1', 'inactive', 'screen_locked');
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw1:s1']);
    expect(h.pushes.jobs).toHaveLength(0);
    const [d] = await h.decisions('u1');
    expect(d).toMatchObject({ route: 'pc_fallback', reason: 'screen_locked', targets: [{ device: 'pc', via: 'pc' }] });
  });

  it("pushes to the vendors an app has credentials for, by the device's app", async () => {
    h = harness({ canPush: canPushWith({ apps: { default: {}, beta: { apns: { endpoint: 'https://x', keyFile: 'k', keyId: 'K', teamId: 'T', topic: 't' } } } }) });
    await h.registry.put('u1', 'alpha-phone', { os: 'ios', token: 'b'.repeat(64) });
    await h.registry.put('u1', 'beta-phone', { os: 'ios', token: 'c'.repeat(64), app: 'beta' });
    h.route('u1', 'm1');
    await until(() => h.settled.length === 1);
    expect(h.pushes.jobs.map((j) => `${j.device}:${j.vendor}:${j.app ?? 'default'}`)).toEqual(['beta-phone:apns:beta']);
  });
});

describe('push metrics', () => {
  it('count a failed push as an outcome, never as a delivery', async () => {
    h = harness();
    h.pushes.auto = { outcome: 'failed', reason: 'fcm 400 INVALID_ARGUMENT' };
    await h.registry.put('u1', 'pixel', { os: 'android', token: 'fcm-tok' });
    h.route('u1', 'm1');
    await until(() => h.settled.includes('m1'));
    await h.router.drain(1000); // m1 is held (its push failed); a held replay at the mailbox load may try it once more
    const failed = (await counter(h, 'pushOutcomes'))['fcm/failed'];
    expect(await counter(h, 'pushOutcomes')).toEqual({ 'fcm/failed': failed });
    expect(failed).toBeGreaterThanOrEqual(1);
    expect(await counter(h, 'deliveries')).toEqual({});
    h.pushes.auto = { outcome: 'ok' };
    h.route('u1', 'm2');
    await until(() => h.settled.includes('m2'));
    expect(await counter(h, 'pushOutcomes')).toEqual({ 'fcm/failed': failed, 'fcm/ok': 1 });
    expect(await counter(h, 'deliveries')).toEqual({ fcm: 1 });
  });
});

describe('start-up', () => {
  it('logs one line listing which vendors are on, per app, without credentials', () => {
    const lines: { obj: object; msg: string }[] = [];
    const config = parseConfig({ SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: '/secret/sa.json', SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY: 'pub', SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY: 'priv-key-material', SWITCHBOARD_WEBPUSH_SUBJECT: 'mailto:ops@example.com' });
    logVendorsOn(loadSenderConfig(config), { info: (obj: object, msg: string) => lines.push({ obj, msg }) } as never);
    expect(lines).toEqual([{ obj: { vendors: { default: ['fcm', 'webpush'] } }, msg: 'vendor push on: default: fcm, webpush' }]);
    expect(JSON.stringify(lines)).not.toMatch(/sa\.json|priv-key-material/);
  });
});
