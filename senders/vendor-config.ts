import type { Vendor } from '../protocol/index.js';

/**
 * What a sender worker needs to reach the vendors: plain data, cloned into each Piscina worker
 * (workers import neither nact nor NATS). Secrets stay file paths; workers read the files themselves.
 */
export interface SenderConfig {
  apns: { endpoint: string; keyFile?: string; keyId?: string; teamId?: string; topic?: string };
  fcm: { serviceAccountFile?: string; endpoint?: string };
}

/** Why a vendor cannot be used, or undefined when its credentials are configured. */
export function missingCredentials(vendor: Vendor, config: SenderConfig): string | undefined {
  switch (vendor) {
    case 'apns':
      return config.apns.keyFile ? undefined : 'apns is not configured: set SWITCHBOARD_APNS_KEY_FILE, _KEY_ID, _TEAM_ID and _TOPIC';
    case 'fcm':
      return config.fcm.serviceAccountFile ? undefined : 'fcm is not configured: set SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE';
    case 'hms':
      return 'hms is not configured: Huawei Push Kit credentials are not supported by this build yet';
    case 'webpush':
      return 'webpush is not configured: VAPID keys are not supported by this build yet';
  }
}
