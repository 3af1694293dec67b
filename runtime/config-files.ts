import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { nkeys } from '@nats-io/transport-node';
import { readApnsKey } from '../senders/apns-token.js';
import { parseServiceAccount } from '../senders/oauth-service-account.js';
import { DEFAULT_APP, type AppCredentials, type SenderConfig } from '../senders/vendor-config.js';
import { vapidProblem } from '../senders/webpush.js';
import { ConfigError, type Config } from './config.js';
import { loadSenderConfig } from './sender-config.js';
import { fileErrorCode } from '../base/file-errors.js';

const APPS_FILE_VAR = 'SWITCHBOARD_APPS_FILE';

/**
 * PROTOCOL.md section 1 for the values that name files or hold keys: every file is read and its content checked at
 * start, before the node opens anything, so that a missing or broken credential stops the process (ConfigError, exit
 * 2, one line naming the variable) instead of starting with the vendor "on" and failing each push, or retrying NATS
 * until SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS. `parseConfig` stays pure (no file reads); `startNode` calls this first.
 *
 * Checked where the node uses them: the NATS files when SWITCHBOARD_NATS_URL is set; the vendor credentials of every
 * app (environment and SWITCHBOARD_APPS_FILE) on a node with the `sender` role (a gateway-only node never reads them,
 * so they need not be deployed there). Messages name the file and the problem, never its content.
 */
export function checkConfigFiles(config: Config): void {
  if (config.natsServers.length > 0) checkNatsFiles(config);
  // The apps file's own shape is checked on every node (gateways take the app names from it).
  const senders = loadSenderConfig(config);
  if (config.roles.includes('sender')) checkVendorCredentials(config, senders);
}

/**
 * SWITCHBOARD_NATS_CREDS_FILE (a user JWT and its nkey seed, in the blocks nats.js `credsAuthenticator` parses),
 * SWITCHBOARD_NATS_NKEY_SEED_FILE (a user nkey seed, `SU…`), SWITCHBOARD_NATS_TLS_CA_FILE (PEM certificates),
 * SWITCHBOARD_NATS_TLS_CERT_FILE and _TLS_KEY_FILE (a PEM certificate and the unencrypted private key of its public
 * key). nats.js reads them only when it connects, where a bad one would look like an unreachable server.
 */
export function checkNatsFiles(config: Config): void {
  const n = config.nats;
  if (n.credsFile) {
    const text = read('SWITCHBOARD_NATS_CREDS_FILE', n.credsFile, 'a NATS .creds file (user JWT and nkey seed)').toString('utf8');
    // nats-core authenticator.ts credsAuthenticator: the first block between ----- lines is the JWT, the second the seed.
    const blocks = [...text.matchAll(/\s*(?:(?:-{3,}[^\n]*-{3,}\n)(.+)(?:\n\s*-{3,}[^\n]*-{3,}\n))/gi)].map((m) => m[1].trim());
    const problem = blocks.length < 2 ? 'no JWT and seed blocks'
      : !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(blocks[0]) ? 'its first block is not a JWT'
        : userSeedProblem(blocks[1]);
    if (problem) throw new ConfigError('SWITCHBOARD_NATS_CREDS_FILE', `a NATS .creds file (user JWT and nkey seed) (${n.credsFile}: ${problem})`);
  }
  if (n.nkeySeedFile) {
    const seed = read('SWITCHBOARD_NATS_NKEY_SEED_FILE', n.nkeySeedFile, 'a file holding a NATS user nkey seed (SU…)').toString('utf8').trim();
    const problem = userSeedProblem(seed);
    if (problem) throw new ConfigError('SWITCHBOARD_NATS_NKEY_SEED_FILE', `a file holding a NATS user nkey seed (SU…) (${n.nkeySeedFile}: ${problem})`);
  }
  if (n.tlsCaFile) certificate('SWITCHBOARD_NATS_TLS_CA_FILE', n.tlsCaFile, 'a PEM file of CA certificates');
  if (n.tlsCertFile && n.tlsKeyFile) {
    const cert = certificate('SWITCHBOARD_NATS_TLS_CERT_FILE', n.tlsCertFile, 'a PEM client certificate file');
    const must = 'a PEM file holding the unencrypted private key of SWITCHBOARD_NATS_TLS_CERT_FILE';
    const key = privateKey('SWITCHBOARD_NATS_TLS_KEY_FILE', n.tlsKeyFile, must);
    if (!cert.checkPrivateKey(key)) throw new ConfigError('SWITCHBOARD_NATS_TLS_KEY_FILE', `${must} (${n.tlsKeyFile}: the key is not the certificate's)`);
  }
}

/**
 * Every app's vendor credentials, as the senders will use them: the APNs .p8 key (`readApnsKey`), the FCM service
 * account (`parseServiceAccount`) and the VAPID keys (`vapidProblem`). The default app's come from the environment
 * and are named by their variable; other apps' (and a default app the apps file overrides) by SWITCHBOARD_APPS_FILE
 * and the field, like `apps.beta.fcm.serviceAccountFile`.
 */
export function checkVendorCredentials(config: Config, senders: SenderConfig): void {
  for (const [app, creds] of Object.entries(senders.apps)) checkApp(config, app, creds);
}

function checkApp(config: Config, app: string, creds: AppCredentials): void {
  const env = app === DEFAULT_APP;
  if (creds.apns) {
    const read = readApnsKey(creds.apns.keyFile);
    if (!read.ok) {
      const must = 'a readable .p8 file holding an EC P-256 (ES256) private key';
      const why = `(${creds.apns.keyFile}: ${read.problem})`;
      throw env && creds.apns.keyFile === config.apns.keyFile
        ? new ConfigError('SWITCHBOARD_APNS_KEY_FILE', `${must} ${why}`)
        : new ConfigError(APPS_FILE_VAR, `a file where apps.${app}.apns.keyFile is ${must} ${why}`);
    }
  }
  if (creds.fcm) {
    const file = creds.fcm.serviceAccountFile;
    const must = 'a readable Google service-account JSON file with project_id, client_email and an RSA private_key';
    let problem: string | undefined;
    try {
      const parsed = parseServiceAccount(readFileSync(file, 'utf8'));
      if (!parsed.ok) problem = parsed.problem;
    } catch (e) {
      problem = `is unreadable (${fileErrorCode(e)})`;
    }
    if (problem !== undefined) {
      throw env && file === config.fcm.serviceAccountFile
        ? new ConfigError('SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE', `${must}; ${file} ${problem}`)
        : new ConfigError(APPS_FILE_VAR, `a file where apps.${app}.fcm.serviceAccountFile is ${must}; ${file} ${problem}`);
    }
  }
  if (creds.webpush) {
    const problem = vapidProblem(creds.webpush);
    if (problem !== undefined) {
      const w = creds.webpush;
      const fromEnv = env && w.vapidPrivateKey === config.webpush.vapidPrivateKey && w.vapidPublicKey === config.webpush.vapidPublicKey && w.subject === config.webpush.subject;
      // web-push's messages say which of the three is wrong; a pair that does not match is the public key's fault.
      const [variable, field, must] = /subject/i.test(problem) ? ['SWITCHBOARD_WEBPUSH_SUBJECT', 'subject', 'a mailto: or https: URL']
        : /public key/i.test(problem) ? ['SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY', 'vapidPublicKey', 'the public key of the VAPID pair (65 bytes, URL-safe base64)']
          : ['SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY', 'vapidPrivateKey', 'the private key of the VAPID pair (32 bytes, URL-safe base64)'];
      throw fromEnv ? new ConfigError(variable, `${must} (${problem})`) : new ConfigError(APPS_FILE_VAR, `a file where apps.${app}.webpush.${field} is ${must} (${problem})`);
    }
  }
}

/** Why `seed` is not a NATS user nkey seed, or undefined (nkeys `fromSeed`: prefix, base32, CRC16). */
function userSeedProblem(seed: string): string | undefined {
  try {
    const pair = nkeys.fromSeed(new TextEncoder().encode(seed));
    return pair.getPublicKey().startsWith('U') ? undefined : 'the seed is not a user seed (SU…)';
  } catch {
    return 'not a valid nkey seed';
  }
}

function read(variable: string, file: string, must: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(variable, `${must} (${file}: ${fileErrorCode(e)})`);
  }
}

function certificate(variable: string, file: string, must: string): X509Certificate {
  const pem = read(variable, file, must);
  try {
    return new X509Certificate(pem);
  } catch {
    throw new ConfigError(variable, `${must} (${file}: not a PEM certificate)`);
  }
}

function privateKey(variable: string, file: string, must: string): KeyObject {
  const pem = read(variable, file, must);
  try {
    return createPrivateKey(pem);
  } catch {
    throw new ConfigError(variable, `${must} (${file}: not an unencrypted PEM private key)`);
  }
}
