import { readFileSync } from 'node:fs';
import { parseJsonText } from '../base/json-text.js';
import { isObject } from '../protocol/fields.js';
import { HMS_BADGE_CLASS_RULE, isHmsBadgeClass } from '../protocol/push-payload.js';
import type { Logger } from '../base/logger.js';
import { DEFAULT_APP, vendorsOn, type AppCredentials, type SenderConfig } from '../senders/vendor-config.js';
import { ConfigError, DEFAULT_APNS_ENDPOINT, DEFAULT_HMS_AUTH_ENDPOINT, DEFAULT_HMS_PUSH_ENDPOINT, type Config } from './config.js';
import { fileErrorCode } from '../base/file-errors.js';
import { vendorEndpointProblem } from './address-rules.js';

const FILE_VAR = 'SWITCHBOARD_APPS_FILE';

/**
 * The senders' credentials by app: `default` from the environment, others from SWITCHBOARD_APPS_FILE:
 * `{"apps":{"<name>":{"apns":{"keyFile","keyId","teamId","topic","endpoint"?},"fcm":{"serviceAccountFile","endpoint"?},
 * "hms":{"appId","clientId","clientSecret","authEndpoint"?,"pushEndpoint"?,"badgeClass"?},"webpush":{"vapidPublicKey","vapidPrivateKey","subject"}}}}`.
 * Validated at start like every other setting (ConfigError -> exit 2); the credential files it names are read and
 * checked by runtime/config-files.ts.
 */
export function loadSenderConfig(config: Config): SenderConfig {
  const apps: Record<string, AppCredentials> = { [DEFAULT_APP]: fromEnv(config) };
  const webpushAllowedHosts = config.webpush.allowedHosts;
  if (!config.appsFile) return { apps, webpushAllowedHosts };
  let text: string;
  try {
    text = readFileSync(config.appsFile, 'utf8');
  } catch (e) {
    throw new ConfigError(FILE_VAR, `a readable JSON file (${config.appsFile}: ${fileErrorCode(e)})`);
  }
  // The file holds client secrets and private keys: a parse error says where, never quotes the text.
  const json = parseJsonText(text);
  if (!json.ok) throw new ConfigError(FILE_VAR, `a readable JSON file (${config.appsFile}: ${json.problem})`);
  const parsed = json.value;
  if (!isObject(parsed) || !isObject(parsed.apps)) throw new ConfigError(FILE_VAR, 'a JSON file of the form {"apps":{"<name>":{...}}}');
  for (const [name, entry] of Object.entries(parsed.apps)) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new ConfigError(FILE_VAR, `a file whose app names are 1-64 characters A-Z a-z 0-9 . _ - ("${name}" is not)`);
    if (!isObject(entry)) throw new ConfigError(FILE_VAR, `a file where app "${name}" is an object`);
    apps[name] = { ...(name === DEFAULT_APP ? apps[DEFAULT_APP] : {}), ...readApp(name, entry) };
  }
  return { apps, webpushAllowedHosts };
}

/**
 * The one start-up line saying which vendors can push, per app (section 4: the others are not reachable by push),
 * e.g. "vendor push on: default: apns, fcm; beta: none". Names vendors and apps only, never credentials.
 */
export function logVendorsOn(senderConfig: SenderConfig, log: Pick<Logger, 'info'>): void {
  const on = vendorsOn(senderConfig);
  const text = Object.entries(on).map(([app, vendors]) => `${app}: ${vendors.length > 0 ? vendors.join(', ') : 'none'}`).join('; ');
  log.info({ vendors: on }, `vendor push on: ${text}`);
}

function fromEnv(c: Config): AppCredentials {
  const app: AppCredentials = {};
  if (c.apns.keyFile && c.apns.keyId && c.apns.teamId && c.apns.topic) {
    app.apns = { endpoint: c.apns.endpoint, keyFile: c.apns.keyFile, keyId: c.apns.keyId, teamId: c.apns.teamId, topic: c.apns.topic };
  }
  if (c.fcm.serviceAccountFile) app.fcm = { serviceAccountFile: c.fcm.serviceAccountFile, endpoint: c.fcm.endpoint };
  if (c.hms.appId && c.hms.clientId && c.hms.clientSecret) {
    app.hms = {
      appId: c.hms.appId, clientId: c.hms.clientId, clientSecret: c.hms.clientSecret, authEndpoint: c.hms.authEndpoint, pushEndpoint: c.hms.pushEndpoint,
      ...(c.hms.badgeClass !== undefined ? { badgeClass: c.hms.badgeClass } : {}),
    };
  }
  if (c.webpush.vapidPublicKey && c.webpush.vapidPrivateKey && c.webpush.subject) {
    app.webpush = { vapidPublicKey: c.webpush.vapidPublicKey, vapidPrivateKey: c.webpush.vapidPrivateKey, subject: c.webpush.subject };
  }
  return app;
}

function readApp(name: string, e: Record<string, unknown>): AppCredentials {
  const field = (vendor: string, o: unknown, key: string, optional = false): string | undefined => {
    const v = isObject(o) ? o[key] : undefined;
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string' || v === '') throw new ConfigError(FILE_VAR, `a file where apps.${name}.${vendor}.${key} is a non-empty string`);
    return v;
  };
  /** An endpoint's origin, checked as the environment's (runtime/address-rules.ts): https:// only for APNs. */
  const endpoint = (vendor: string, o: unknown, key: string, httpsOnly = false): string | undefined => {
    const raw = field(vendor, o, key, true);
    if (raw === undefined) return undefined;
    const problem = vendorEndpointProblem(raw, httpsOnly);
    if (problem !== undefined) throw new ConfigError(FILE_VAR, `a file where apps.${name}.${vendor}.${key} is ${problem}`);
    return new URL(raw).origin;
  };
  const app: AppCredentials = {};
  if (e.apns !== undefined) {
    app.apns = {
      endpoint: endpoint('apns', e.apns, 'endpoint', true) ?? DEFAULT_APNS_ENDPOINT,
      keyFile: field('apns', e.apns, 'keyFile')!, keyId: field('apns', e.apns, 'keyId')!,
      teamId: field('apns', e.apns, 'teamId')!, topic: field('apns', e.apns, 'topic')!,
    };
  }
  if (e.fcm !== undefined) app.fcm = { serviceAccountFile: field('fcm', e.fcm, 'serviceAccountFile')!, endpoint: endpoint('fcm', e.fcm, 'endpoint') };
  if (e.hms !== undefined) {
    app.hms = {
      appId: field('hms', e.hms, 'appId')!, clientId: field('hms', e.hms, 'clientId')!, clientSecret: field('hms', e.hms, 'clientSecret')!,
      authEndpoint: endpoint('hms', e.hms, 'authEndpoint') ?? DEFAULT_HMS_AUTH_ENDPOINT,
      pushEndpoint: endpoint('hms', e.hms, 'pushEndpoint') ?? DEFAULT_HMS_PUSH_ENDPOINT,
    };
    const badge = field('hms', e.hms, 'badgeClass', true);
    if (badge !== undefined) {
      if (!isHmsBadgeClass(badge)) throw new ConfigError(FILE_VAR, `a file where apps.${name}.hms.badgeClass is ${HMS_BADGE_CLASS_RULE}`);
      app.hms.badgeClass = badge;
    }
  }
  if (e.webpush !== undefined) {
    app.webpush = {
      vapidPublicKey: field('webpush', e.webpush, 'vapidPublicKey')!, vapidPrivateKey: field('webpush', e.webpush, 'vapidPrivateKey')!,
      subject: field('webpush', e.webpush, 'subject')!,
    };
  }
  return app;
}
