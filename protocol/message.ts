import { SwitchboardError } from './errors.js';
import { id, invalid, isObject, oneOf, optionalId, optionalInt, optionalStr, optionalStringMap, str, type Json } from './fields.js';
import { fail, ok, type Decoded } from './result.js';

/** Mobile operating systems and the vendor push service each one uses (PROTOCOL.md section 4). */
export const MOBILE_OS = ['ios', 'android', 'harmony', 'web'] as const;
export type MobileOs = (typeof MOBILE_OS)[number];

export type Vendor = 'apns' | 'fcm' | 'hms' | 'webpush';
export const VENDOR_OF: Readonly<Record<MobileOs, Vendor>> = { ios: 'apns', android: 'fcm', harmony: 'hms', web: 'webpush' };

export type Priority = 'high' | 'normal';

/** A chat message as a chat server hands it over (PROTOCOL.md section 3), plus the time it was accepted. */
export interface ChatMessage {
  readonly id: string;
  readonly to: string;
  readonly from?: string;
  readonly title?: string;
  readonly text?: string;
  readonly data?: Readonly<Record<string, string>>;
  readonly collapseKey?: string;
  readonly priority?: Priority;
  readonly ttlSeconds?: number;
  /** Section 4, quiet hours: an urgent message's vendor pushes are never silenced. Only `true` is kept. */
  readonly urgent?: true;
  /** Epoch ms when the message was durably accepted; sent to clients as `ts`. */
  readonly acceptedAt: number;
}

/** Largest accepted `POST /v1/messages` body and NATS `switchboard.send` payload. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
export const MAX_TITLE_CHARS = 1024;
export const MAX_TEXT_CHARS = 32 * 1024;
export const MAX_DATA_KEYS = 64;
export const MAX_COLLAPSE_KEY_CHARS = 64;
/** FCM's and APNs' longest time to live: 28 days. */
export const MAX_TTL_SECONDS = 28 * 24 * 3600;
/** Longest vendor push token; a Web Push subscription JSON is the largest kind. */
export const MAX_PUSH_TOKEN_CHARS = 4096;

/** Validates a send request (HTTP body or NATS payload, already parsed). */
export function decodeSendRequest(body: unknown, acceptedAt: number): Decoded<ChatMessage> {
  try {
    if (!isObject(body)) throw invalid('body', 'a JSON object');
    const msg: ChatMessage = {
      id: id(body, 'id'),
      to: id(body, 'to'),
      from: optionalId(body, 'from'),
      title: optionalStr(body, 'title', MAX_TITLE_CHARS),
      text: optionalStr(body, 'text', MAX_TEXT_CHARS),
      data: optionalStringMap(body, 'data', MAX_DATA_KEYS, MAX_TEXT_CHARS),
      collapseKey: optionalStr(body, 'collapseKey', MAX_COLLAPSE_KEY_CHARS),
      priority: body.priority === undefined ? undefined : oneOf(body, 'priority', ['high', 'normal'] as const),
      ttlSeconds: optionalInt(body, 'ttlSeconds', 0, MAX_TTL_SECONDS),
      urgent: optionalUrgent(body),
      acceptedAt,
    };
    return ok(stripUndefined(msg));
  } catch (e) {
    return fail(asProtocolError(e));
  }
}

/** A device registration (`PUT /v1/users/{u}/devices/{d}` body or `register` frame). */
export interface DeviceRegistration {
  readonly os: MobileOs;
  readonly token: string;
  /** Which configured app's credentials to push with; absent = the default app. */
  readonly app?: string;
}

export function decodeDeviceRegistration(body: unknown): Decoded<DeviceRegistration> {
  try {
    if (!isObject(body)) throw invalid('body', 'a JSON object');
    return ok(readRegistration(body));
  } catch (e) {
    return fail(asProtocolError(e));
  }
}

export function readRegistration(body: Json): DeviceRegistration {
  const os = oneOf(body, 'os', MOBILE_OS);
  const token = str(body, 'token', MAX_PUSH_TOKEN_CHARS);
  if (token.length === 0) throw invalid('token', 'a non-empty string');
  const app = optionalId(body, 'app');
  return app === undefined ? { os, token } : { os, token, app };
}

function optionalUrgent(body: Json): true | undefined {
  const v = body.urgent;
  if (v === undefined || v === false) return undefined;
  if (v !== true) throw invalid('urgent', 'true or false');
  return true;
}

export function asProtocolError(e: unknown): SwitchboardError {
  return e instanceof SwitchboardError ? e : new SwitchboardError('invalid_request', String(e), { cause: e });
}

function stripUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
