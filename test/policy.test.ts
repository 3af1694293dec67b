import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { decide } from '../actors/decide.js';
import { isQuietAt, localMinutes, pushDelayMsOf, pushesSilent } from '../actors/policy.js';
import { decodePolicy, idleAfterMsOf, type QuietHours, type UserPolicy } from '../protocol/index.js';

/**
 * Issue 10 part 2: the per-user policy's validation (PROTOCOL.md section 3, 400 invalid_field naming the field) and
 * quiet hours in the user's IANA zone (section 4), run in virtual time (vitest fake timers) across Europe/Berlin's
 * daylight-saving changes (EU rule: last Sunday of March 01:00 UTC, last Sunday of October 01:00 UTC).
 */

const MINUTE = 60_000;

describe('policy validation (section 3: 400 invalid_field naming the field)', () => {
  it('accepts a full policy, and one with only the required mobile rule', () => {
    const full = { mobile: 'always', idleAfterSeconds: 120, pushDelaySeconds: 30, quietHours: { start: '22:00', end: '07:00', tz: 'Europe/Berlin' } };
    expect(decodePolicy(full)).toEqual({ ok: true, value: full });
    expect(decodePolicy({ mobile: 'when_away' })).toEqual({ ok: true, value: { mobile: 'when_away' } });
    expect(decodePolicy({ mobile: 'never', quietHours: null })).toEqual({ ok: true, value: { mobile: 'never' } });
  });

  it.each([[{}], [{ idleAfterSeconds: 30 }], [{ quietHours: null }]])('refuses %j: mobile is required (section 3), so a partial body cannot reset the rest', (body) => {
    const d = decodePolicy(body);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error.toBody()).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('mobile must be given') });
  });

  it.each([
    [[], 'body'],
    [{ mobile: 'sometimes' }, 'mobile'],
    [{ mobile: 1 }, 'mobile'],
    [{ idleAfterSeconds: 0 }, 'idleAfterSeconds'],
    [{ idleAfterSeconds: 1.5 }, 'idleAfterSeconds'],
    [{ idleAfterSeconds: '60' }, 'idleAfterSeconds'],
    [{ pushDelaySeconds: -1 }, 'pushDelaySeconds'],
    [{ pushDelaySeconds: 3601 }, 'pushDelaySeconds'],
    [{ quietHours: '22:00-07:00' }, 'quietHours'],
    [{ quietHours: { start: '24:00', end: '07:00', tz: 'UTC' } }, 'quietHours.start'],
    [{ quietHours: { start: '7:00', end: '08:00', tz: 'UTC' } }, 'quietHours.start'],
    [{ quietHours: { start: '22:00', end: '07:60', tz: 'UTC' } }, 'quietHours.end'],
    [{ quietHours: { start: '22:00', end: '22:00', tz: 'UTC' } }, 'quietHours.end'],
    [{ quietHours: { start: '22:00', end: '07:00', tz: 'Mars/Olympus_Mons' } }, 'quietHours.tz'],
    [{ quietHours: { start: '22:00', end: '07:00' } }, 'quietHours.tz'],
    [{ quietHours: { start: '22:00', end: '07:00', tz: 'UTC', days: 'weekdays' } }, 'quietHours.days'],
    [{ quiethours: { start: '22:00', end: '07:00', tz: 'UTC' } }, 'quiethours'],
  ])('refuses %j naming %s', (body, field) => {
    const d = decodePolicy(body);
    expect(d.ok).toBe(false);
    if (d.ok) return;
    expect(d.error.code).toBe('invalid_field');
    expect(d.error.status).toBe(400);
    expect(d.error.message).toContain(field);
  });

  it('idleAfterMs for welcome: 60000 by default, else the policy in ms; push delay overrides the node', () => {
    expect(idleAfterMsOf(undefined)).toBe(60_000);
    expect(idleAfterMsOf({ mobile: 'when_away', idleAfterSeconds: 300 })).toBe(300_000);
    expect(pushDelayMsOf(undefined, 2500)).toBe(2500);
    expect(pushDelayMsOf({ mobile: 'when_away', pushDelaySeconds: 0 }, 2500)).toBe(0);
    expect(pushDelayMsOf({ mobile: 'when_away', pushDelaySeconds: 90 }, 2500)).toBe(90_000);
  });
});

describe('quiet hours over time (fake timers, Europe/Berlin)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Walks virtual time minute by minute from `fromIso` for `minutes`; returns the UTC "HH:MM" ranges that were quiet. */
  function quietRanges(q: QuietHours, fromIso: string, minutes: number): string[] {
    vi.setSystemTime(new Date(fromIso));
    const ranges: string[] = [];
    let openedAt: string | undefined;
    for (let i = 0; i <= minutes; i++) {
      const hhmm = new Date(Date.now()).toISOString().slice(11, 16);
      const quiet = isQuietAt(q, Date.now());
      if (quiet && openedAt === undefined) openedAt = hhmm;
      if (!quiet && openedAt !== undefined) {
        ranges.push(`${openedAt}-${hhmm}`);
        openedAt = undefined;
      }
      vi.advanceTimersByTime(MINUTE);
    }
    return ranges;
  }

  it('spring forward (2027-03-28, 02:00 CET -> 03:00 CEST): 02:30-03:30 local lasts 30 minutes that night', () => {
    // 02:00-02:59 local does not exist that night; the window is quiet from 03:00 CEST (01:00 UTC) to 03:30 CEST.
    expect(quietRanges({ start: '02:30', end: '03:30', tz: 'Europe/Berlin' }, '2027-03-27T23:00:00Z', 240)).toEqual(['01:00-01:30']);
  });

  it('fall back (2027-10-31, 03:00 CEST -> 02:00 CET): 02:00-03:00 local is quiet twice, two hours in all', () => {
    expect(quietRanges({ start: '02:00', end: '03:00', tz: 'Europe/Berlin' }, '2027-10-30T22:00:00Z', 300)).toEqual(['00:00-02:00']);
  });

  it('a window over midnight (22:00-07:00) in winter and in summer follows the local clock', () => {
    const night: QuietHours = { start: '22:00', end: '07:00', tz: 'Europe/Berlin' };
    expect(quietRanges(night, '2027-01-15T12:00:00Z', 24 * 60)).toEqual(['21:00-06:00']); // CET = UTC+1
    expect(quietRanges(night, '2027-07-15T12:00:00Z', 24 * 60)).toEqual(['20:00-05:00']); // CEST = UTC+2
  });

  it('the night the clocks go back, 22:00-07:00 is ten real hours long', () => {
    const ranges = quietRanges({ start: '22:00', end: '07:00', tz: 'Europe/Berlin' }, '2027-10-30T12:00:00Z', 24 * 60);
    expect(ranges).toEqual(['20:00-06:00']); // 22:00 CEST = 20:00 UTC; 07:00 CET = 06:00 UTC
  });

  it('decide() marks pushes silent only inside the window and never for urgent messages, as time passes', () => {
    vi.setSystemTime(new Date('2027-03-27T20:30:00Z')); // 21:30 CET
    const policy: UserPolicy = { mobile: 'when_away', quietHours: { start: '22:00', end: '07:00', tz: 'Europe/Berlin' } };
    const state = { mobiles: [{ device: 'pixel', os: 'android' as const, token: 'tok' }], policy };
    const route = (urgent = false) => decide(state, { id: 'm', to: 'u', acceptedAt: Date.now(), ...(urgent ? { urgent: true as const } : {}) }, Date.now(), { presenceTtlMs: 90_000 });
    expect(route().decision.reason).toBe('no_pc');
    vi.advanceTimersByTime(30 * MINUTE); // 22:00 CET
    expect(route().decision).toMatchObject({ reason: 'quiet_hours', targets: [{ device: 'pixel', via: 'fcm', silent: true }] });
    expect(route(true).decision.targets[0].silent).toBeUndefined();
    vi.advanceTimersByTime(8 * 60 * MINUTE); // 05:00 UTC the next morning = 07:00 CEST after the spring change
    expect(route().decision.reason).toBe('no_pc');
    expect(pushesSilent(policy, {}, Date.now() - MINUTE)).toBe(true); // 06:59 CEST
  });

  it('localMinutes reads the wall clock of the zone', () => {
    expect(localMinutes('UTC', Date.UTC(2027, 0, 1, 23, 59))).toBe(23 * 60 + 59);
    expect(localMinutes('Asia/Kolkata', Date.UTC(2027, 0, 1, 0, 0))).toBe(5 * 60 + 30);
    expect(localMinutes('America/New_York', Date.UTC(2027, 6, 1, 3, 0))).toBe(23 * 60);
  });
});
