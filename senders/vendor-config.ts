import type { Vendor } from '../protocol/index.js';

/**
 * What sender workers need to reach the vendors: plain data, cloned into each Piscina worker (workers import
 * neither nact nor NATS). Credentials are per app (issue 3, part 8): the environment defines the default app,
 * a JSON file named by SWITCHBOARD_APPS_FILE may add more. Key material stays in files that workers read.
 */
export const DEFAULT_APP = 'default';

export interface ApnsCredentials {
  /** APNs origin, default https://api.push.apple.com. */
  endpoint: string;
  keyFile: string;
  keyId: string;
  teamId: string;
  /** Bundle id, sent as `apns-topic`. */
  topic: string;
  /**
   * The provider token shared by the pool's sender threads (senders/apns-token-slot.ts): made by the pool in the main
   * thread (`withTokenSlots`), never read from configuration. Absent: the sender signs its own.
   */
  tokenSlot?: SharedArrayBuffer;
}

export interface FcmCredentials {
  serviceAccountFile: string;
  /** When set, the OAuth token exchange and the sends both go to this origin (PROTOCOL.md section 1). */
  endpoint?: string;
}

export interface HmsCredentials {
  appId: string;
  clientId: string;
  clientSecret: string;
  /** OAuth origin, default https://oauth-login.cloud.huawei.com (POST /oauth2/v3/token). */
  authEndpoint: string;
  /** Push Kit origin, default https://push-api.cloud.huawei.com (POST /v1/{appId}/messages:send). */
  pushEndpoint: string;
  /**
   * The app's entry activity (`com.example.chat.MainActivity`): when set, alert pushes carry the user's unread count
   * as the launcher badge (`android.notification.badge`, which Push Kit refuses without this class). Unset: no badge.
   */
  badgeClass?: string;
}

export interface WebPushCredentials {
  vapidPublicKey: string;
  vapidPrivateKey: string;
  /** `mailto:` or `https:` contact sent in the VAPID JWT. */
  subject: string;
}

export interface AppCredentials {
  apns?: ApnsCredentials;
  fcm?: FcmCredentials;
  hms?: HmsCredentials;
  webpush?: WebPushCredentials;
}

export interface SenderConfig {
  /** By app name; `default` holds what the environment variables define. */
  apps: Record<string, AppCredentials>;
  /** SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS; unset = DEFAULT_WEBPUSH_HOSTS (senders/webpush-hosts.ts). */
  webpushAllowedHosts?: readonly string[];
}

const ENV_HINT: Record<Vendor, string> = {
  apns: 'set SWITCHBOARD_APNS_KEY_FILE, _KEY_ID, _TEAM_ID and _TOPIC',
  fcm: 'set SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE',
  hms: 'set SWITCHBOARD_HMS_APP_ID, _CLIENT_ID and _CLIENT_SECRET',
  webpush: 'set SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY, _VAPID_PRIVATE_KEY and _SUBJECT',
};

/** The credentials a job needs, or why there are none (a clear `failed` reason, never a fake success). */
export function credentialsFor<V extends Vendor>(config: SenderConfig, app: string | undefined, vendor: V):
  { ok: true; creds: NonNullable<AppCredentials[V]> } | { ok: false; reason: string } {
  const name = app ?? DEFAULT_APP;
  const entry = config.apps[name];
  if (!entry) return { ok: false, reason: `unknown app "${name}": list it in SWITCHBOARD_APPS_FILE` };
  const creds = entry[vendor];
  if (!creds) {
    const hint = name === DEFAULT_APP ? ENV_HINT[vendor] : `add "${vendor}" to app "${name}" in SWITCHBOARD_APPS_FILE`;
    return { ok: false, reason: `${vendor} is not configured for app "${name}": ${hint}` };
  }
  return { ok: true, creds: creds as NonNullable<AppCredentials[V]> };
}

const VENDORS: readonly Vendor[] = ['apns', 'fcm', 'hms', 'webpush'];

/** The vendors with credentials, by app: `{"default":["apns","fcm"],"beta":[...]}` (start-up log line). */
export function vendorsOn(config: SenderConfig): Record<string, Vendor[]> {
  const out: Record<string, Vendor[]> = {};
  for (const [app, creds] of Object.entries(config.apps)) out[app] = VENDORS.filter((v) => creds[v] !== undefined);
  return out;
}

/**
 * The routing's `canPush` (PROTOCOL.md section 4): true when `vendor` has credentials for `app` (undefined = the
 * default app). A device whose vendor has none is not reachable by push, so its messages go to the PC fallback or
 * are held instead of "failing" at a sender.
 */
export function canPushWith(config: SenderConfig): (vendor: Vendor, app: string | undefined) => boolean {
  return (vendor, app) => config.apps[app ?? DEFAULT_APP]?.[vendor] !== undefined;
}

/** Back-compat helper for the default app. */
export function missingCredentials(vendor: Vendor, config: SenderConfig): string | undefined {
  const r = credentialsFor(config, undefined, vendor);
  return r.ok ? undefined : r.reason;
}
