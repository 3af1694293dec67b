import { describe, expect, it, vi } from 'vitest';

// The default node id is `<hostname>-<pid>`; the host name is swappable so long names can be tried.
const host = vi.hoisted(() => ({ name: undefined as string | undefined }));
vi.mock('node:os', async (importOriginal) => {
  const os = await importOriginal<typeof import('node:os')>();
  return { ...os, hostname: () => host.name ?? os.hostname() };
});
const { hostname, tmpdir } = await import('node:os');
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ConfigError,
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_APNS_ENDPOINT,
  DEFAULT_DATA_DIR,
  DEFAULT_DATA_DIR_MIN_FREE_BYTES,
  DEFAULT_DEDUPE_WINDOW_MS,
  DEFAULT_DECISION_SAVE_MS,
  DEFAULT_FRAME_RATE,
  DEFAULT_HOST,
  DEFAULT_LOG_LEVEL,
  DEFAULT_PARTITIONS,
  DEFAULT_PASSIVATE_AFTER_MS,
  DEFAULT_PORT,
  DEFAULT_PRESENCE_TTL_MS,
  DEFAULT_PUSH_DELAY_MS,
  DEFAULT_SEND_BUFFER_BYTES,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  DEFAULT_NATS_CONNECT_TIMEOUT_MS,
  DEFAULT_SUMMARY_INTERVAL_MS,
  DEFAULT_SUBJECT_PREFIX,
  parseConfig,
} from '../runtime/config.js';
import { loadSenderConfig } from '../runtime/sender-config.js';
import { configError } from './support/config-error.js';

/** PROTOCOL.md section 1: every value validated at start, one message naming the variable and what it must be. */

const SECRET = 'x'.repeat(16);


const intVars: [name: string, field: string, min: number, max: number][] = [
  ['SWITCHBOARD_PORT', 'port', 0, 65535],
  ['SWITCHBOARD_PARTITIONS', 'partitions', 1, 65536],
  ['SWITCHBOARD_ACK_TIMEOUT_MS', 'ackTimeoutMs', 1, 3_600_000],
  ['SWITCHBOARD_PRESENCE_TTL_MS', 'presenceTtlMs', 1000, 86_400_000],
  ['SWITCHBOARD_PUSH_DELAY_MS', 'pushDelayMs', 0, 3_600_000],
  ['SWITCHBOARD_HEARTBEAT_MS', 'clientHeartbeatMs', 100, 3_600_000],
  ['SWITCHBOARD_PASSIVATE_AFTER_MS', 'passivateAfterMs', 10, 86_400_000],
  ['SWITCHBOARD_DEDUPE_WINDOW_MS', 'dedupeWindowMs', 1000, 86_400_000],
  ['SWITCHBOARD_DECISION_SAVE_MS', 'decisionSaveMs', 0, 3_600_000],
  ['SWITCHBOARD_SEND_BUFFER_BYTES', 'sendBufferBytes', 65_536, 1 << 30],
  ['SWITCHBOARD_FRAME_RATE', 'frameRate', 1, 1_000_000],
  ['SWITCHBOARD_SHUTDOWN_TIMEOUT_MS', 'shutdownTimeoutMs', 100, 600_000],
  ['SWITCHBOARD_SHUTDOWN_DELAY_MS', 'shutdownDelayMs', 0, 600_000],
  ['SWITCHBOARD_HOLD_TTL_SECONDS', 'holdTtlSeconds', 1, 28 * 24 * 3600],
  ['SWITCHBOARD_HOLD_MAX', 'holdMax', 1, 1_000_000],
  ['SWITCHBOARD_MAX_INFLIGHT', 'maxInflight', 1, 100_000],
  ['SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS', 'natsConnectTimeoutMs', 0, 3_600_000],
  ['SWITCHBOARD_SUMMARY_INTERVAL_MS', 'summaryIntervalMs', 0, 86_400_000],
  ['SWITCHBOARD_HEAP_GROWTH_PERCENT', 'heapGrowthPercent', 0, 1000],
  ['SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES', 'dataDirMinFreeBytes', 0, 2 ** 40],
];

describe('parseConfig: integer variables', () => {
  for (const [name, field, min, max] of intVars) {
    describe(name, () => {
      const message = `${name} must be an integer ${min}-${max}`;
      it.each([String(max + 1), 'abc', '1.5', '-1', '1e3', '0x10', '12abc'].concat(min > 0 ? [String(min - 1)] : []))(
        `refuses %j with "${message}"`,
        (raw) => {
          const e = configError({ [name]: raw });
          expect(e.message).toBe(message);
          expect(e.variable).toBe(name);
        },
      );
      it('accepts both bounds', () => {
        for (const ok of [min, max]) {
          const cfg = parseConfig({ [name]: String(ok) }) as unknown as Record<string, unknown>;
          expect(cfg[field]).toBe(ok);
        }
      });
    });
  }

  it('maps each integer variable to its field', () => {
    const cfg = parseConfig({
      SWITCHBOARD_PORT: '8080',
      SWITCHBOARD_PARTITIONS: '16',
      SWITCHBOARD_ACK_TIMEOUT_MS: '1234',
      SWITCHBOARD_PRESENCE_TTL_MS: '3000',
      SWITCHBOARD_PUSH_DELAY_MS: '250',
      SWITCHBOARD_HEARTBEAT_MS: '700',
      SWITCHBOARD_PASSIVATE_AFTER_MS: '5000',
      SWITCHBOARD_DEDUPE_WINDOW_MS: '9000',
      SWITCHBOARD_SEND_BUFFER_BYTES: '70000',
      SWITCHBOARD_FRAME_RATE: '50',
      SWITCHBOARD_SHUTDOWN_TIMEOUT_MS: '2500',
    });
    expect(cfg).toMatchObject({
      port: 8080,
      partitions: 16,
      ackTimeoutMs: 1234,
      presenceTtlMs: 3000,
      pushDelayMs: 250,
      clientHeartbeatMs: 700,
      passivateAfterMs: 5000,
      dedupeWindowMs: 9000,
      sendBufferBytes: 70000,
      frameRate: 50,
      shutdownTimeoutMs: 2500,
    });
  });

  it('trims surrounding white space and treats a blank value as unset', () => {
    expect(parseConfig({ SWITCHBOARD_PORT: ' 8081 ' }).port).toBe(8081);
    expect(parseConfig({ SWITCHBOARD_PORT: '   ' }).port).toBe(DEFAULT_PORT);
  });
});

describe('parseConfig: string and list variables', () => {
  const cases: [name: string, bad: string[], message: string][] = [
    ['SWITCHBOARD_HOST', ['bad host', 'a/b', '-h.example'], 'SWITCHBOARD_HOST must be a host name or IP address'],
    ['SWITCHBOARD_NODE_ID', ['has space', 'a/b', 'x'.repeat(65), 'ünïcode'], 'SWITCHBOARD_NODE_ID must be 1-64 characters of A-Z a-z 0-9 . _ -'],
    ['SWITCHBOARD_ROLES', ['gateway,foo', 'router;sender', ',', 'Gateway'], 'SWITCHBOARD_ROLES must be a comma list of gateway, router, sender'],
    ['SWITCHBOARD_SUBJECT_PREFIX', ['a.b', 'a*', 'x'.repeat(33), 'sp ace'], 'SWITCHBOARD_SUBJECT_PREFIX must be one subject token of 1-32 characters A-Z a-z 0-9 _ -'],
    ['SWITCHBOARD_LOG_LEVEL', ['verbose', 'INFO'], 'SWITCHBOARD_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent'],
    ['SWITCHBOARD_JWT_SECRET', ['short', 'x'.repeat(15)], 'SWITCHBOARD_JWT_SECRET must be at least 16 characters'],
    ['SWITCHBOARD_API_KEY', ['short', 'x'.repeat(15)], 'SWITCHBOARD_API_KEY must be at least 16 characters'],
    // APNs is HTTP/2 over TLS: its sender refuses an http:// origin, so start does (every push would fail).
    ['SWITCHBOARD_APNS_ENDPOINT', ['not a url', 'ftp://apns.example', 'api.push.apple.com', 'http://127.0.0.1:8443'], 'SWITCHBOARD_APNS_ENDPOINT must be an https:// URL'],
    ['SWITCHBOARD_FCM_ENDPOINT', ['not a url', 'ws://fcm.example', 'localhost:8443'], 'SWITCHBOARD_FCM_ENDPOINT must be an https:// or http:// URL'],
    ['SWITCHBOARD_HMS_BADGE_CLASS', ['MainActivity', 'com.example.', 'com example.Main', '.com.Main', `com.${'a'.repeat(252)}`], "SWITCHBOARD_HMS_BADGE_CLASS must be the app's entry activity class (at most 255 characters), like com.example.chat.MainActivity"],
  ];
  const nats = 'SWITCHBOARD_NATS_URL must be a comma-separated list of NATS URLs (nats://host:port);';
  it.each([
    ['http://x:4222', `${nats} http:// is not a NATS scheme`],
    ['nats://a:1,https://b', `${nats} entry 2: https:// is not a NATS scheme`],
    ['a b', `${nats} a path, query or space follows the host`],
  ])('SWITCHBOARD_NATS_URL=%j -> %j', (raw, message) => {
    const e = configError({ SWITCHBOARD_JWT_SECRET: SECRET, SWITCHBOARD_API_KEY: SECRET, SWITCHBOARD_NATS_URL: raw });
    expect(e.message).toBe(message);
    expect(e.variable).toBe('SWITCHBOARD_NATS_URL');
  });

  for (const [name, bad, message] of cases) {
    it.each(bad)(`${name}=%j -> "${message}"`, (raw) => {
      // Cluster-only requirements are satisfied so that only `name` can be at fault.
      const e = configError({ [name]: raw });
      expect(e.message).toBe(message);
      expect(e.variable).toBe(name);
    });
  }

  it('accepts host names, IPv4 and IPv6 addresses', () => {
    for (const host of ['localhost', '0.0.0.0', '::1', '[::1]', 'node-1.example.com']) {
      expect(parseConfig({ SWITCHBOARD_HOST: host }).host).toBe(host);
    }
  });

  it('splits NATS URLs and roles on commas, trimming each', () => {
    const cfg = parseConfig({
      SWITCHBOARD_NATS_URL: 'nats://a:4222, tls://b:4223 ,c:4224',
      SWITCHBOARD_JWT_SECRET: SECRET,
      SWITCHBOARD_API_KEY: SECRET,
      SWITCHBOARD_ROLES: 'router, sender',
    });
    expect(cfg.natsServers).toEqual(['nats://a:4222', 'tls://b:4223', 'c:4224']);
    expect([...cfg.roles].sort()).toEqual(['router', 'sender']);
  });

  it('keeps only the origin of a vendor endpoint', () => {
    const cfg = parseConfig({ SWITCHBOARD_APNS_ENDPOINT: 'https://127.0.0.1:8443/', SWITCHBOARD_FCM_ENDPOINT: 'http://fcm.test:9443/v1' });
    expect(cfg.apns.endpoint).toBe('https://127.0.0.1:8443');
    expect(cfg.fcm.endpoint).toBe('http://fcm.test:9443');
  });

  it('a cluster (SWITCHBOARD_NATS_URL set) requires the shared JWT secret, then the API key', () => {
    expect(configError({ SWITCHBOARD_NATS_URL: 'nats://a:4222' }).message).toBe(
      'SWITCHBOARD_JWT_SECRET must be set when SWITCHBOARD_NATS_URL is set (every node must share it)',
    );
    expect(configError({ SWITCHBOARD_NATS_URL: 'nats://a:4222', SWITCHBOARD_JWT_SECRET: SECRET }).message).toBe(
      'SWITCHBOARD_API_KEY must be set when SWITCHBOARD_NATS_URL is set (every node must share it)',
    );
    expect(parseConfig({ SWITCHBOARD_NATS_URL: 'nats://a:4222', SWITCHBOARD_JWT_SECRET: SECRET, SWITCHBOARD_API_KEY: SECRET }).jwtSecret).toBe(SECRET);
  });

  it('APNs credentials come all four together or not at all', () => {
    const all = {
      SWITCHBOARD_APNS_KEY_FILE: '/keys/AuthKey.p8',
      SWITCHBOARD_APNS_KEY_ID: 'KEYID12345',
      SWITCHBOARD_APNS_TEAM_ID: 'TEAMID1234',
      SWITCHBOARD_APNS_TOPIC: 'com.example.chat',
    };
    const message = 'SWITCHBOARD_APNS_KEY_FILE must be set together with SWITCHBOARD_APNS_KEY_ID, _TEAM_ID and _TOPIC (all four or none)';
    for (const missing of Object.keys(all)) {
      const partial: Record<string, string> = { ...all };
      delete partial[missing];
      expect(configError(partial).message).toBe(message);
    }
    expect(configError({ SWITCHBOARD_APNS_TOPIC: 'com.example.chat' }).message).toBe(message);
    expect(parseConfig(all).apns).toEqual({
      endpoint: DEFAULT_APNS_ENDPOINT,
      keyFile: '/keys/AuthKey.p8',
      keyId: 'KEYID12345',
      teamId: 'TEAMID1234',
      topic: 'com.example.chat',
    });
  });
});

describe('HMS launcher badge class (SWITCHBOARD_HMS_BADGE_CLASS, apps file hms.badgeClass)', () => {
  const hms = { SWITCHBOARD_HMS_APP_ID: '1234', SWITCHBOARD_HMS_CLIENT_ID: 'client', SWITCHBOARD_HMS_CLIENT_SECRET: 'secret' };
  it('reaches the default app\'s HMS credentials from the environment, and only when set', () => {
    expect(loadSenderConfig(parseConfig({ ...hms, SWITCHBOARD_HMS_BADGE_CLASS: 'com.example.chat.MainActivity' })).apps.default.hms?.badgeClass).toBe('com.example.chat.MainActivity');
    expect(loadSenderConfig(parseConfig(hms)).apps.default.hms).not.toHaveProperty('badgeClass');
  });
  it('is read per app from the apps file, and refused there when it is not a class name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-apps-'));
    try {
      const file = join(dir, 'apps.json');
      const app = (badgeClass?: string) => ({ apps: { beta: { hms: { appId: '9', clientId: 'c', clientSecret: 's', ...(badgeClass !== undefined ? { badgeClass } : {}) } } } });
      writeFileSync(file, JSON.stringify(app('com.example.beta.Main')));
      expect(loadSenderConfig(parseConfig({ SWITCHBOARD_APPS_FILE: file })).apps.beta.hms?.badgeClass).toBe('com.example.beta.Main');
      writeFileSync(file, JSON.stringify(app('Main')));
      expect(() => loadSenderConfig(parseConfig({ SWITCHBOARD_APPS_FILE: file }))).toThrow(
        "SWITCHBOARD_APPS_FILE must be a file where apps.beta.hms.badgeClass is the app's entry activity class (at most 255 characters), like com.example.chat.MainActivity",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('apps file vendor endpoints (SWITCHBOARD_APPS_FILE)', () => {
  const apns = (endpoint: string) => ({ apps: { beta: { apns: { endpoint, keyFile: 'k.p8', keyId: 'K', teamId: 'T', topic: 't' } } } });
  const fcm = (endpoint: string) => ({ apps: { beta: { fcm: { endpoint, serviceAccountFile: 'sa.json' } } } });
  it.each([
    [apns('http://127.0.0.1:8443'), 'apps.beta.apns.endpoint is an https:// URL'],
    [apns('not a url'), 'apps.beta.apns.endpoint is an https:// URL'],
    [fcm('ftp://fcm.test'), 'apps.beta.fcm.endpoint is an https:// or http:// URL'],
  ])('refuses %j at start', (apps, must) => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-apps-'));
    try {
      const file = join(dir, 'apps.json');
      writeFileSync(file, JSON.stringify(apps));
      expect(() => loadSenderConfig(parseConfig({ SWITCHBOARD_APPS_FILE: file }))).toThrow(`SWITCHBOARD_APPS_FILE must be a file where ${must}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('keeps an endpoint\'s origin, as from the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-apps-'));
    try {
      const file = join(dir, 'apps.json');
      writeFileSync(file, JSON.stringify(fcm('http://127.0.0.1:9443/some/path')));
      expect(loadSenderConfig(parseConfig({ SWITCHBOARD_APPS_FILE: file })).apps.beta.fcm?.endpoint).toBe('http://127.0.0.1:9443');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseConfig: defaults', () => {
  it('an empty environment gives the documented defaults (PROTOCOL.md section 1)', () => {
    const cfg = parseConfig({});
    expect(cfg.host).toBe('127.0.0.1');
    expect(cfg.port).toBe(7400);
    expect(cfg.natsServers).toEqual([]);
    expect(cfg.nodeId).toBe(`${hostname()}-${process.pid}`);
    expect([...cfg.roles].sort()).toEqual(['gateway', 'router', 'sender']);
    expect(cfg.partitions).toBe(64);
    expect(cfg.subjectPrefix).toBe('switchboard');
    expect(cfg.dataDir).toBe('./data');
    expect(cfg.dataDirMinFreeBytes).toBe(64 * 1024 * 1024);
    expect(cfg.jwtSecret).toBeUndefined();
    expect(cfg.apiKey).toBeUndefined();
    expect(cfg.ackTimeoutMs).toBe(5000);
    expect(cfg.presenceTtlMs).toBe(90_000);
    expect(cfg.pushDelayMs).toBe(0);
    expect(cfg.apns).toEqual({ endpoint: 'https://api.push.apple.com' });
    expect(cfg.apns.keyFile ?? cfg.apns.keyId ?? cfg.apns.teamId ?? cfg.apns.topic).toBeUndefined();
    expect(cfg.fcm.serviceAccountFile).toBeUndefined();
    expect(cfg.fcm.endpoint).toBeUndefined();
  });

  it('the project defaults match the exported DEFAULT_* constants', () => {
    const cfg = parseConfig({});
    expect(cfg).toMatchObject({
      host: DEFAULT_HOST,
      port: DEFAULT_PORT,
      partitions: DEFAULT_PARTITIONS,
      subjectPrefix: DEFAULT_SUBJECT_PREFIX,
      dataDir: DEFAULT_DATA_DIR,
      dataDirMinFreeBytes: DEFAULT_DATA_DIR_MIN_FREE_BYTES,
      ackTimeoutMs: DEFAULT_ACK_TIMEOUT_MS,
      presenceTtlMs: DEFAULT_PRESENCE_TTL_MS,
      pushDelayMs: DEFAULT_PUSH_DELAY_MS,
      passivateAfterMs: DEFAULT_PASSIVATE_AFTER_MS,
      dedupeWindowMs: DEFAULT_DEDUPE_WINDOW_MS,
      decisionSaveMs: DEFAULT_DECISION_SAVE_MS,
      sendBufferBytes: DEFAULT_SEND_BUFFER_BYTES,
      frameRate: DEFAULT_FRAME_RATE,
      logLevel: DEFAULT_LOG_LEVEL,
      shutdownTimeoutMs: DEFAULT_SHUTDOWN_TIMEOUT_MS,
      natsConnectTimeoutMs: DEFAULT_NATS_CONNECT_TIMEOUT_MS,
      summaryIntervalMs: DEFAULT_SUMMARY_INTERVAL_MS,
    });
  });

  it('the heartbeat defaults to a third of the presence TTL', () => {
    expect(parseConfig({}).clientHeartbeatMs).toBe(30_000);
    expect(parseConfig({ SWITCHBOARD_PRESENCE_TTL_MS: '1000' }).clientHeartbeatMs).toBe(333);
    expect(parseConfig({ SWITCHBOARD_PRESENCE_TTL_MS: '1000', SWITCHBOARD_HEARTBEAT_MS: '200' }).clientHeartbeatMs).toBe(200);
  });

  it('the default node id stays valid on a host with a long name (a Kubernetes pod name may be 63 characters)', () => {
    host.name = 'chat-switchboard-gateway-7d9f8c6b5d-' + 'x'.repeat(63 - 36);
    try {
      expect(host.name.length).toBe(63);
      const cfg = parseConfig({});
      expect(cfg.nodeId.length).toBeGreaterThan(0);
      expect(cfg.nodeId).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
    } finally {
      host.name = undefined;
    }
  });

  it('takes the values it is given', () => {
    const cfg = parseConfig({
      SWITCHBOARD_HOST: '0.0.0.0',
      SWITCHBOARD_NODE_ID: 'node-7.eu_1',
      SWITCHBOARD_ROLES: 'gateway',
      SWITCHBOARD_SUBJECT_PREFIX: 'sb_test-1',
      SWITCHBOARD_DATA_DIR: '/var/lib/switchboard',
      SWITCHBOARD_JWT_SECRET: 'j'.repeat(32),
      SWITCHBOARD_API_KEY: 'k'.repeat(16),
      SWITCHBOARD_LOG_LEVEL: 'silent',
      SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: '/keys/fcm.json',
    });
    expect(cfg).toMatchObject({
      host: '0.0.0.0',
      nodeId: 'node-7.eu_1',
      subjectPrefix: 'sb_test-1',
      dataDir: '/var/lib/switchboard',
      jwtSecret: 'j'.repeat(32),
      apiKey: 'k'.repeat(16),
      logLevel: 'silent',
    });
    expect([...cfg.roles]).toEqual(['gateway']);
    expect(cfg.fcm.serviceAccountFile).toBe('/keys/fcm.json');
  });

  it('does not read process.env when an environment is passed', () => {
    vi.stubEnv('SWITCHBOARD_PORT', '9999');
    try {
      expect(parseConfig({}).port).toBe(DEFAULT_PORT);
      expect(parseConfig().port).toBe(9999);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('parseConfig: the result is frozen', () => {
  it('top-level fields cannot be changed', () => {
    const cfg = parseConfig({}) as any;
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(() => {
      cfg.port = 1;
    }).toThrow(TypeError);
    expect(cfg.port).toBe(DEFAULT_PORT);
  });

  it('nested objects and lists cannot be changed', () => {
    const cfg = parseConfig({ SWITCHBOARD_NATS_URL: 'nats://a:4222', SWITCHBOARD_JWT_SECRET: SECRET, SWITCHBOARD_API_KEY: SECRET }) as any;
    expect(Object.isFrozen(cfg.apns)).toBe(true);
    expect(Object.isFrozen(cfg.fcm)).toBe(true);
    expect(Object.isFrozen(cfg.natsServers)).toBe(true);
    expect(() => {
      cfg.apns.endpoint = 'http://evil';
    }).toThrow(TypeError);
    expect(() => cfg.natsServers.push('nats://b:4222')).toThrow(TypeError);
    expect(cfg.natsServers).toEqual(['nats://a:4222']);
  });

  it('the roles set cannot be changed at run time', () => {
    const cfg = parseConfig({ SWITCHBOARD_ROLES: 'gateway' }) as any;
    try {
      cfg.roles.add('router');
    } catch {
      /* a frozen view may throw instead: also fine */
    }
    expect([...cfg.roles]).toEqual(['gateway']);
  });

  it('each call returns a fresh object', () => {
    expect(parseConfig({})).not.toBe(parseConfig({}));
  });
});
