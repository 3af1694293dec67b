import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../base/logger.js';

describe('logger redaction', () => {
  it('never writes device tokens, JWTs, API keys or vendor keys', async () => {
    const chunks: string[] = [];
    const sink = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
    const log = createLogger('info', sink);
    const secrets = ['DEVICE-TOKEN-123', 'eyJhbGciOiJIUzI1NiJ9.SECRET.JWT', 'API-KEY-456', 'PRIVATE-KEY-789', 'BEARER-999', 'SECRET-000'];
    log.info({ token: secrets[0] }, 'register');
    log.info({ job: { token: secrets[0], device: 'd1' } }, 'push');
    log.info({ frame: { type: 'hello', token: secrets[1] } }, 'hello');
    log.info({ apiKey: secrets[2], config: { apiKey: secrets[2], jwtSecret: secrets[5] } }, 'config');
    log.info({ privateKey: secrets[3], cred: { private_key: secrets[3] } }, 'creds');
    log.info({ req: { headers: { authorization: `Bearer ${secrets[4]}` } } }, 'request');
    await new Promise((r) => setImmediate(r));
    const out = chunks.join('');
    expect(out).toContain('d1');
    expect(out.match(/\[redacted\]/g)?.length).toBeGreaterThanOrEqual(8);
    for (const s of secrets) expect(out).not.toContain(s);
  });
});

describe('log call sites', () => {
  it('never bind a `msg` key: pino writes the message under `msg` too, and a line with two keeps only one for most parsers', async () => {
    const { readdirSync, readFileSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const root = join(import.meta.dirname, '..');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(join(root, dir))) {
        const rel = join(dir, name);
        if (statSync(join(root, rel)).isDirectory()) walk(rel);
        else if (rel.endsWith('.ts') && !rel.endsWith('.d.ts')) {
          // A log call whose bindings object, on the same line, has a `msg` key.
          readFileSync(join(root, rel), 'utf8').split('\n').forEach((line, i) => {
            if (/\blog\.(trace|debug|info|warn|error|fatal)\(\{[^}]*\bmsg:/.test(line)) offenders.push(`${rel}:${i + 1}`);
          });
        }
      }
    };
    for (const dir of ['actors', 'base', 'bus', 'cluster', 'gateway', 'runtime', 'senders', 'store', 'bin']) walk(dir);
    expect(offenders).toEqual([]);
  });
});
