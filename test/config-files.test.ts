import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import webpush from 'web-push';
import { afterAll, describe, expect, it } from 'vitest';
import { parseJsonText } from '../base/json-text.js';
import { ConfigError, parseConfig } from '../runtime/config.js';
import { checkConfigFiles } from '../runtime/config-files.js';
import { loadSecrets } from '../runtime/secrets.js';
import { StartError } from '../runtime/start-error.js';
import { readServiceAccount } from '../senders/oauth-service-account.js';
import { testTls } from './vendors/test-tls.js';

/**
 * PROTOCOL.md section 1 for the values that name files or hold keys: `checkConfigFiles` (run first by `startNode`)
 * reads every such file and refuses one the node could not use (ConfigError naming the variable, exit 2), where the
 * node used to start with the vendor "on" and fail each push. Keys are generated here with node:crypto; no key file
 * is kept in the repository.
 */

const dir = mkdtempSync(join(tmpdir(), 'switchboard-config-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** Writes `content` to a fresh file in the temp dir and returns its path. */
function file(content: string | Buffer, name = `f${++n}`): string {
  const path = join(dir, `${++n}-${name}`);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

const pem = (k: { export(o: { type: 'pkcs8' | 'sec1'; format: 'pem' }): string | Buffer }, type: 'pkcs8' | 'sec1' = 'pkcs8') => String(k.export({ type, format: 'pem' }));
const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const RSA_PEM = pem(rsa);
/** A distinctive line of the RSA key: it must never appear in a message. */
const KEY_LINE = RSA_PEM.split('\n')[5];

const account = (over: Record<string, unknown> = {}) => JSON.stringify({
  type: 'service_account', project_id: 'demo', client_email: 'sender@demo.iam.gserviceaccount.com', private_key: RSA_PEM,
  token_uri: 'https://oauth2.googleapis.com/token', ...over,
});

function drop(o: string, key: string): string {
  const j = JSON.parse(o);
  delete j[key];
  return JSON.stringify(j);
}

const APNS = { SWITCHBOARD_APNS_KEY_ID: 'KEYID12345', SWITCHBOARD_APNS_TEAM_ID: 'TEAMID1234', SWITCHBOARD_APNS_TOPIC: 'com.example.chat' };
const CLUSTER = { SWITCHBOARD_NATS_URL: 'nats://127.0.0.1:4222', SWITCHBOARD_JWT_SECRET: 'j'.repeat(32), SWITCHBOARD_API_KEY: 'k'.repeat(32) };

/** The ConfigError checkConfigFiles throws for `env`, or fails the test when it throws none. */
function refusal(env: Record<string, string>): ConfigError {
  try {
    checkConfigFiles(parseConfig(env));
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`checkConfigFiles accepted ${JSON.stringify(env)}`);
}

const accepts = (env: Record<string, string>) => expect(() => checkConfigFiles(parseConfig(env))).not.toThrow();

describe('SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE', () => {
  const V = 'SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE';
  const cases: [what: string, content: string | undefined, problem: string][] = [
    ['a missing file', undefined, 'is unreadable (ENOENT)'],
    ['a file holding "{"', '{', 'is not valid JSON (at position 1)'],
    ['JSON that is not an object', '["x"]', 'is not a JSON object'],
    ['no project_id', drop(account(), 'project_id'), 'has no "project_id"'],
    ['an empty project_id', account({ project_id: '' }), 'has no "project_id"'],
    ['no client_email', drop(account(), 'client_email'), 'has no "client_email"'],
    ['no private_key', drop(account(), 'private_key'), 'has no "private_key"'],
    ['a private_key that is not a key', account({ private_key: 'not a key' }), 'has an unusable private_key'],
    ['a private_key that is an EC key (the assertion is RS256)', account({ private_key: pem(p256) }), 'has a private_key that is not an RSA key (ec; the assertion is RS256)'],
    ['a token_uri that is not a URL', account({ token_uri: 'oauth2 token' }), 'has a token_uri that is not an http(s) URL'],
  ];
  it.each(cases)('refuses %s, naming the variable and the file', (_what, content, problem) => {
    const path = content === undefined ? join(dir, 'missing.json') : file(content, 'sa.json');
    const e = refusal({ [V]: path });
    expect(e.variable).toBe(V);
    expect(e.message).toContain(`${V} must be a readable Google service-account JSON file with project_id, client_email and an RSA private_key; ${path} ${problem}`);
    expect(e.message).not.toContain(KEY_LINE);
    expect(e.message.split('\n')).toHaveLength(1);
  });

  it('never quotes the file: a parse error of a file holding a key names the position only', () => {
    const path = file(`{"private_key": ${RSA_PEM.replace(/\n/g, ' ')}}`, 'sa.json');
    const e = refusal({ [V]: path });
    expect(e.message).toMatch(/is not valid JSON/);
    expect(e.message).not.toContain('BEGIN');
    expect(e.message).not.toContain(KEY_LINE.slice(0, 20));
  });

  it('accepts a service account as Google issues it (RSA private_key in PKCS#8 PEM), with or without token_uri', () => {
    accepts({ [V]: file(account(), 'sa.json') });
    accepts({ [V]: file(drop(account(), 'token_uri'), 'sa.json') });
    // The fake FCM server's fixture: token_uri on a local http origin.
    accepts({ [V]: file(account({ token_uri: 'http://127.0.0.1:9/token' }), 'sa.json') });
  });

  it('the sender\'s own reason for a broken file names the file, never its content', async () => {
    const path = file(`{"private_key": "${KEY_LINE}" oops}`, 'sa.json');
    const r = await readServiceAccount(path);
    expect(r).toMatchObject({ ok: false });
    expect((r as { reason: string }).reason).toBe(`fcm service account ${path} is not valid JSON (at position ${`{"private_key": "${KEY_LINE}" `.length})`);
  });
});

describe('SWITCHBOARD_APNS_KEY_FILE', () => {
  const V = 'SWITCHBOARD_APNS_KEY_FILE';
  const must = `${V} must be a readable .p8 file holding an EC P-256 (ES256) private key`;
  const cases: [what: string, content: string | undefined, problem: string][] = [
    ['a missing file', undefined, 'ENOENT'],
    ['garbage', 'this is not a key', 'not a PEM private key'],
    ['an empty file', '', 'not a PEM private key'],
    ['a public key', String(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' })), 'not a PEM private key'],
    ['an RSA key', RSA_PEM, 'it holds a key of type rsa'],
    ['an EC key on P-384', pem(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey), 'it holds an EC key on secp384r1'],
  ];
  it.each(cases)('refuses %s, with _KEY_ID, _TEAM_ID and _TOPIC set', (_what, content, problem) => {
    const path = content === undefined ? join(dir, 'AuthKey_missing.p8') : file(content, 'AuthKey.p8');
    const e = refusal({ ...APNS, [V]: path });
    expect(e.variable).toBe(V);
    expect(e.message).toBe(`${must} (${path}: ${problem})`);
  });

  it('refuses a directory', () => {
    expect(refusal({ ...APNS, [V]: dir }).message).toBe(`${must} (${dir}: EISDIR)`);
  });

  it('accepts a PKCS#8 P-256 key as Apple issues it (.p8), and the SEC1 form createPrivateKey also loads', () => {
    accepts({ ...APNS, [V]: file(pem(p256), 'AuthKey.p8') });
    accepts({ ...APNS, [V]: file(pem(p256, 'sec1'), 'AuthKey.p8') });
  });
});

describe('SWITCHBOARD_WEBPUSH_VAPID_* (keys in the environment, checked like the files)', () => {
  const pair = webpush.generateVAPIDKeys();
  const other = webpush.generateVAPIDKeys();
  const env = (pub: string, priv: string) => ({ SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY: pub, SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY: priv, SWITCHBOARD_WEBPUSH_SUBJECT: 'mailto:ops@example.com' });

  it('refuses keys web-push cannot sign with, naming the key at fault and never its value', () => {
    const pub = refusal(env('pub', pair.privateKey));
    expect(pub.variable).toBe('SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY');
    const priv = refusal(env(pair.publicKey, 'priv-key-material'));
    expect(priv.variable).toBe('SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY');
    expect(priv.message).not.toContain('priv-key-material');
  });

  it('refuses a public key that is not the private key\'s (push services answer 403)', () => {
    const e = refusal(env(other.publicKey, pair.privateKey));
    expect(e.variable).toBe('SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY');
    expect(e.message).toContain("the VAPID public key is not the private key's");
    expect(e.message).not.toContain(pair.privateKey);
  });

  it('accepts a pair web-push generated', () => {
    accepts(env(pair.publicKey, pair.privateKey));
  });
});

describe('SWITCHBOARD_APPS_FILE: every app\'s credential files', () => {
  const V = 'SWITCHBOARD_APPS_FILE';
  const apps = (a: Record<string, unknown>) => file(JSON.stringify({ apps: a }), 'apps.json');

  it('refuses an app whose APNs key or FCM service account is broken, naming the app\'s field', () => {
    const missing = join(dir, 'nope.p8');
    const e1 = refusal({ [V]: apps({ beta: { apns: { keyFile: missing, keyId: 'K', teamId: 'T', topic: 'com.beta' } } }) });
    expect(e1.variable).toBe(V);
    expect(e1.message).toBe(`${V} must be a file where apps.beta.apns.keyFile is a readable .p8 file holding an EC P-256 (ES256) private key (${missing}: ENOENT)`);
    const sa = file('{', 'sa.json');
    const e2 = refusal({ [V]: apps({ beta: { fcm: { serviceAccountFile: sa } } }) });
    expect(e2.message).toBe(`${V} must be a file where apps.beta.fcm.serviceAccountFile is a readable Google service-account JSON file with project_id, client_email and an RSA private_key; ${sa} is not valid JSON (at position 1)`);
  });

  it('an apps file that overrides the default app\'s FCM file is named as the apps file', () => {
    const sa = file(drop(account(), 'project_id'), 'sa.json');
    const e = refusal({ SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: file(account(), 'sa.json'), [V]: apps({ default: { fcm: { serviceAccountFile: sa } } }) });
    expect(e.message).toContain('apps.default.fcm.serviceAccountFile');
  });

  it('a JSON error in the apps file (which holds secrets) does not quote it', () => {
    const path = file('{"apps":{"beta":{"hms":{"clientSecret": s3cret-hms-value}}}}', 'apps.json');
    const e = refusal({ [V]: path });
    expect(e.message).toMatch(/^SWITCHBOARD_APPS_FILE must be a readable JSON file \(.+: not valid JSON( \(at position \d+\))?\)$/);
    expect(e.message).not.toContain('s3cret');
  });

  it('accepts apps whose files are good', () => {
    accepts({ [V]: apps({ beta: { apns: { keyFile: file(pem(p256)), keyId: 'K', teamId: 'T', topic: 'com.beta' }, fcm: { serviceAccountFile: file(account()) } } }) });
  });
});

describe('only where the node uses them', () => {
  it('a gateway-only cluster node does not read the vendor credentials (it sends no pushes)', () => {
    accepts({ ...CLUSTER, SWITCHBOARD_ROLES: 'gateway', SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: join(dir, 'missing.json') });
    expect(refusal({ ...CLUSTER, SWITCHBOARD_ROLES: 'router,sender', SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: join(dir, 'missing.json') }).variable)
      .toBe('SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE');
  });

  it('the NATS files are read only with SWITCHBOARD_NATS_URL set (the embedded node has no NATS connection)', () => {
    accepts({ SWITCHBOARD_NATS_CREDS_FILE: join(dir, 'missing.creds') });
    expect(refusal({ ...CLUSTER, SWITCHBOARD_NATS_CREDS_FILE: join(dir, 'missing.creds') }).variable).toBe('SWITCHBOARD_NATS_CREDS_FILE');
  });
});

describe('NATS credential and TLS files', () => {
  const user = nkeys.createUser();
  const seed = new TextDecoder().decode(user.getSeed());
  const account = new TextDecoder().decode(nkeys.createAccount().getSeed());
  const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQUJDIn0.c2lnbmF0dXJl';
  const creds = (j: string, s: string) =>
    `-----BEGIN NATS USER JWT-----\n${j}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\n` +
    `NKEY Seed printed below can be used to sign and prove identity.\n\n-----BEGIN USER NKEY SEED-----\n${s}\n------END USER NKEY SEED------\n`;

  it('SWITCHBOARD_NATS_CREDS_FILE: a JWT and a user seed in nsc\'s layout', () => {
    accepts({ ...CLUSTER, SWITCHBOARD_NATS_CREDS_FILE: file(creds(jwt, seed), 'user.creds') });
    for (const [content, problem] of [['{', 'no JWT and seed blocks'], [creds('not-a-jwt', seed), 'its first block is not a JWT'], [creds(jwt, 'SUNOTASEED'), 'not a valid nkey seed'], [creds(jwt, account), 'the seed is not a user seed (SU…)']]) {
      const e = refusal({ ...CLUSTER, SWITCHBOARD_NATS_CREDS_FILE: file(content, 'user.creds') });
      expect(e.variable).toBe('SWITCHBOARD_NATS_CREDS_FILE');
      expect(e.message).toContain(problem);
      expect(e.message).not.toContain(seed);
    }
  });

  it('SWITCHBOARD_NATS_NKEY_SEED_FILE: a user nkey seed', () => {
    accepts({ ...CLUSTER, SWITCHBOARD_NATS_NKEY_SEED_FILE: file(`${seed}\n`, 'user.nk') });
    expect(refusal({ ...CLUSTER, SWITCHBOARD_NATS_NKEY_SEED_FILE: file('garbage', 'user.nk') }).message).toContain('not a valid nkey seed');
    expect(refusal({ ...CLUSTER, SWITCHBOARD_NATS_NKEY_SEED_FILE: join(dir, 'none.nk') }).message).toContain('ENOENT');
  });

  it('SWITCHBOARD_NATS_TLS_CA_FILE, _TLS_CERT_FILE and _TLS_KEY_FILE: PEM certificates and the certificate\'s own key', () => {
    const tls = testTls();
    const cert = file(tls.certPem, 'client.pem');
    const key = file(tls.keyPem, 'client.key');
    accepts({ ...CLUSTER, SWITCHBOARD_NATS_TLS_CA_FILE: tls.caFile, SWITCHBOARD_NATS_TLS_CERT_FILE: cert, SWITCHBOARD_NATS_TLS_KEY_FILE: key });
    expect(refusal({ ...CLUSTER, SWITCHBOARD_NATS_TLS_CA_FILE: file('garbage', 'ca.pem') }).message)
      .toMatch(/^SWITCHBOARD_NATS_TLS_CA_FILE must be a PEM file of CA certificates \(.+: not a PEM certificate\)$/);
    expect(refusal({ ...CLUSTER, SWITCHBOARD_NATS_TLS_CERT_FILE: cert, SWITCHBOARD_NATS_TLS_KEY_FILE: file(pem(p256), 'other.key') }).message)
      .toContain("the key is not the certificate's");
    expect(refusal({ ...CLUSTER, SWITCHBOARD_NATS_TLS_CERT_FILE: cert, SWITCHBOARD_NATS_TLS_KEY_FILE: file('x', 'bad.key') }).variable)
      .toBe('SWITCHBOARD_NATS_TLS_KEY_FILE');
  });
});

describe('parseJsonText', () => {
  it('says where a file is not JSON, when V8 says it, without quoting it (Node 20 messages quote the input)', () => {
    expect(() => JSON.parse('{"k": SECRETVALUE}')).toThrow(/SECRETVALUE/);
    expect(parseJsonText('{"k": SECRETVALUE}')).toEqual({ ok: false, problem: 'not valid JSON' });
    expect(parseJsonText('{"k": "SECRETVALUE"')).toEqual({ ok: false, problem: 'not valid JSON (at position 19)' });
    expect(parseJsonText('{"k": 1}')).toEqual({ ok: true, value: { k: 1 } });
  });
});

describe('generated secrets in the data dir', () => {
  it('a secret file that exists but cannot be read stops the start naming it and the variable, and is not overwritten', async () => {
    const data = mkdtempSync(join(dir, 'data-'));
    mkdirSync(join(data, 'jwt-secret'));
    const err = await loadSecrets(data, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as StartError).message).toBe(`cannot read the generated secret ${join(data, 'jwt-secret')} (EISDIR); make it readable by this user or set SWITCHBOARD_JWT_SECRET`);
    // A configured secret replaces the file.
    expect((await loadSecrets(data, { jwtSecret: 'j'.repeat(32) })).jwtSecret).toBe('j'.repeat(32));
  });
});
