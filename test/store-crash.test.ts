import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDeviceRegistry } from '../store/file-device-registry.js';
import { FileInbox } from '../store/file-inbox.js';
import { collector } from './contracts/ingress.contract.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const dist = join(repo, 'dist');
const childScript = join(repo, 'test', 'support', 'store-crash-child.mjs');

/** Compiles only store/ (and the protocol code it imports) into dist/, so other folders' work in progress cannot break it. */
function compileStore(): void {
  const tsc = join(repo, 'node_modules', '.bin', 'tsc');
  const options = ['--ignoreConfig', '--outDir', dist, '--rootDir', repo, '--module', 'nodenext', '--moduleResolution', 'nodenext'];
  options.push('--target', 'es2022', '--types', 'node', '--strict', '--skipLibCheck', '--sourceMap');
  execFileSync(tsc, [...options, join(repo, 'store/file-inbox.ts'), join(repo, 'store/file-device-registry.ts')], { cwd: repo });
}

/** Reads the child's stdout line by line until `done` says enough, then kills it with SIGKILL mid-stream. */
async function runUntilKilled(child: ChildProcess, done: (lines: string[]) => boolean): Promise<string[]> {
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for await (const line of createInterface({ input: child.stdout! })) {
    lines.push(line);
    if (done(lines)) {
      child.kill('SIGKILL');
      break;
    }
  }
  await exited;
  return lines;
}

describe('stores survive kill -9', () => {
  let dataDir: string;
  beforeAll(async () => {
    compileStore();
    dataDir = await mkdtemp(join(tmpdir(), 'sb-crash-'));
  });
  afterAll(async () => rm(dataDir, { recursive: true, force: true }));

  it('loses no acknowledged accept (single or batch) and no acknowledged device put', async () => {
    const child = spawn(process.execPath, [childScript, dist, dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const count = (lines: string[], kind: string): number => lines.filter((l) => l.startsWith(kind)).length;
    const lines = await runUntilKilled(child, (l) => count(l, 'accepted ') >= 3000 && count(l, 'device ') >= 200);
    expect(child.signalCode).toBe('SIGKILL');

    const acknowledged = lines.filter((l) => l.startsWith('accepted ')).map((l) => l.split(' ')[1]);
    expect(acknowledged.filter((id) => id.startsWith('bat-')).length).toBeGreaterThan(0); // batch-written records too
    // The child settles even-numbered messages; only those may be missing from the replay.
    const mustReplay = acknowledged.filter((id) => Number(id.slice(4)) % 2 === 1);
    const inbox = await FileInbox.open(join(dataDir, 'inbox'), { segmentBytes: 64 * 1024 });
    const got = collector();
    await inbox.consume(got.handler);
    await got.until(inbox.stats().pending);
    const replayed = new Set(got.ids);
    expect(mustReplay.filter((id) => !replayed.has(id))).toEqual([]);
    for (const id of acknowledged) expect(await inbox.accept({ id, to: 'user-1', acceptedAt: Date.now() })).toBe('duplicate');
    await inbox.close();

    // The last acknowledged token of each device must be stored (a later, unacknowledged put may have won).
    const lastToken = new Map<string, number>();
    for (const l of lines.filter((l) => l.startsWith('device '))) {
      const [, device, token] = l.split(' ');
      lastToken.set(device, Number(token.slice(4)));
    }
    const registry = await FileDeviceRegistry.open(join(dataDir, 'devices'));
    const stored = new Map((await registry.list('user-1')).map((r) => [r.device, Number(r.token!.slice(4))]));
    for (const [device, token] of lastToken) expect(stored.get(device)).toBeGreaterThanOrEqual(token);
    await registry.close();
  });
});
