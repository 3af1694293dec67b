import { SwitchboardError } from './errors.js';
import { isObject } from './fields.js';
import { fail, ok, type Decoded } from './result.js';

/**
 * A user's delivery policy, PROTOCOL.md sections 3 (`GET`/`PUT /v1/users/{u}/policy`) and 4 (policy).
 * `mobile`: `when_away` is the routing rule itself; `always` also sends to the mobile path while the PC is active;
 * `never` leaves vendor pushes out (a foreground app still gets messages directly).
 */
export type MobilePolicy = 'when_away' | 'always' | 'never';
export const MOBILE_POLICIES = ['when_away', 'always', 'never'] as const;

/** A daily window in the user's wall-clock time: `start` inclusive, `end` exclusive, over midnight when end < start. */
export interface QuietHours {
  /** "HH:MM", 00:00-23:59. */
  start: string;
  /** "HH:MM", 00:00-23:59, not equal to `start`. */
  end: string;
  /** IANA time zone, e.g. "Europe/Berlin". */
  tz: string;
}

export interface UserPolicy {
  mobile: MobilePolicy;
  /** Idle threshold PC clients should apply, s; sent in `welcome` as `idleAfterMs`. Absent: 60 s. */
  idleAfterSeconds?: number;
  /** Grace before a vendor push, s; overrides SWITCHBOARD_PUSH_DELAY_MS. Absent: the node's setting. */
  pushDelaySeconds?: number;
  /** Vendor pushes in this window are silent, except for `urgent` messages. */
  quietHours?: QuietHours;
}

/** The policy of a user who never set one: the routing rule as written. */
export const DEFAULT_POLICY: Readonly<UserPolicy> = Object.freeze({ mobile: 'when_away' as const });
/** Mattermost desktop and Signal both call a user idle after 60 s without input. */
export const DEFAULT_IDLE_AFTER_SECONDS = 60;
export const MIN_IDLE_AFTER_SECONDS = 5;
export const MAX_IDLE_AFTER_SECONDS = 24 * 3600;
export const MAX_PUSH_DELAY_SECONDS = 3600;
const MAX_TZ_CHARS = 64;
const HH_MM = /^([01]\d|2[0-3]):[0-5]\d$/;
const FIELDS = new Set(['mobile', 'idleAfterSeconds', 'pushDelaySeconds', 'quietHours']);

/** `idleAfterMs` of the `welcome` frame for this policy (section 2). */
export function idleAfterMsOf(policy: UserPolicy | undefined): number {
  return (policy?.idleAfterSeconds ?? DEFAULT_IDLE_AFTER_SECONDS) * 1000;
}

/**
 * Validates a `PUT …/policy` body. The body replaces the whole policy: `mobile` is required (section 3 gives it no
 * `?`; a body without it, `{}` say, was a partial update that silently reset the rest), a left-out optional field
 * takes its default. Errors are 400 `invalid_field` naming the field (an unknown key too, so a typo such as
 * `quiethours` is not silently ignored).
 */
export function decodePolicy(body: unknown): Decoded<UserPolicy> {
  try {
    if (!isObject(body)) throw bad('body', 'a JSON object');
    for (const k of Object.keys(body)) if (!FIELDS.has(k)) throw new SwitchboardError('invalid_field', `${k.slice(0, 64)} is not a policy field (mobile, idleAfterSeconds, pushDelaySeconds, quietHours)`);
    if (body.mobile !== undefined && !(MOBILE_POLICIES as readonly unknown[]).includes(body.mobile)) throw bad('mobile', 'one of "when_away", "always", "never"');
    const policy: UserPolicy = { mobile: body.mobile as MobilePolicy };
    const idle = seconds(body.idleAfterSeconds, 'idleAfterSeconds', MIN_IDLE_AFTER_SECONDS, MAX_IDLE_AFTER_SECONDS);
    if (idle !== undefined) policy.idleAfterSeconds = idle;
    const delay = seconds(body.pushDelaySeconds, 'pushDelaySeconds', 0, MAX_PUSH_DELAY_SECONDS);
    if (delay !== undefined) policy.pushDelaySeconds = delay;
    if (body.quietHours !== undefined && body.quietHours !== null) policy.quietHours = quietHours(body.quietHours);
    // Missing, checked last: a body with a bad value as well is told about that value first.
    if (body.mobile === undefined) throw bad('mobile', 'given (the body replaces the whole policy): one of "when_away", "always", "never"');
    return ok(policy);
  } catch (e) {
    return fail(e instanceof SwitchboardError ? e : new SwitchboardError('invalid_field', String(e)));
  }
}

/** True when `tz` names a time zone this runtime's Intl knows (the IANA database bundled with Node's ICU). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function quietHours(v: unknown): QuietHours {
  if (!isObject(v)) throw bad('quietHours', 'an object {"start":"HH:MM","end":"HH:MM","tz":"<IANA zone>"}');
  for (const k of Object.keys(v)) if (k !== 'start' && k !== 'end' && k !== 'tz') throw new SwitchboardError('invalid_field', `quietHours.${k.slice(0, 64)} is not a quiet-hours field (start, end, tz)`);
  const start = v.start;
  const end = v.end;
  const tz = v.tz;
  if (typeof start !== 'string' || !HH_MM.test(start)) throw bad('quietHours.start', 'a time "HH:MM" from 00:00 to 23:59');
  if (typeof end !== 'string' || !HH_MM.test(end)) throw bad('quietHours.end', 'a time "HH:MM" from 00:00 to 23:59');
  if (start === end) throw bad('quietHours.end', 'different from quietHours.start');
  if (typeof tz !== 'string' || tz.length === 0 || tz.length > MAX_TZ_CHARS || !isTimeZone(tz)) throw bad('quietHours.tz', 'an IANA time zone such as "Europe/Berlin"');
  return { start, end, tz };
}

function seconds(v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(field, `an integer ${min}-${max}`);
  return v;
}

function bad(field: string, must: string): SwitchboardError {
  return new SwitchboardError('invalid_field', `${field} must be ${must}`);
}
