import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * Every name the README's client sections and the clients' doc comments point an app to resolves through
 * package.json `exports` (the built dist/, as another project type-checks it: nodenext, strict). A name left out of
 * an entry point fails here with TS2459 / TS2305, as `BackoffOptions` did (ClientOptions.backoff's docs name it).
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

const CONSUMER = `
import { SwitchboardClient, ClientError, DEFAULT_BACKOFF } from 'switchboard/client';
import type {
  BackoffOptions, ClientOptions, ClientEvents, ClientErrorCode, CloseAction, ConnectionState, Disconnect, TokenSource, WebSocketLike,
  ClearFrame, ErrorFrame, MessageFrame, PolicyFrame, Welcome, PcPresence, MobileState,
} from 'switchboard/client';
import { PcPresenceReporter, nextPresence, presenceFor, DEFAULT_PRESENCE_OPTIONS } from 'switchboard/client/pc-presence';
import type { PresenceAdapter, PresenceSink, PresenceUpdate, PresenceSignals, PresenceMemory, PresenceOptions, PcPresenceOptions } from 'switchboard/client/pc-presence';
import { browserPresenceAdapter, idleDetectorAdapter, pageInputAdapter, requestIdleDetectionPermission } from 'switchboard/client/adapters/browser';
import { electronPresenceAdapter, type PowerMonitorLike, type ElectronAdapterOptions } from 'switchboard/client/adapters/electron';
import { linuxLockAdapter, screenSaverLockSource, type LinuxLockSource, type DbusBusLike, type ScreenSaverSourceOptions } from 'switchboard/client/adapters/linux';
import { MobileSession, pageLifecycle, reactNativeLifecycle, type AppLifecycle, type PushTokenSource, type MobileEvents } from 'switchboard/client/mobile';

const backoff: BackoffOptions = { initialMs: DEFAULT_BACKOFF.initialMs, maxMs: 10_000 };
const options: ClientOptions = { url: 'ws://127.0.0.1:7400/v1/ws', token: 't', backoff };
export const used = [SwitchboardClient, ClientError, PcPresenceReporter, nextPresence, presenceFor, DEFAULT_PRESENCE_OPTIONS, browserPresenceAdapter,
  idleDetectorAdapter, pageInputAdapter, requestIdleDetectionPermission, electronPresenceAdapter, linuxLockAdapter, screenSaverLockSource,
  MobileSession, pageLifecycle, reactNativeLifecycle, options];
export type Used = [ClientEvents, ClientErrorCode, CloseAction, ConnectionState, Disconnect, TokenSource, WebSocketLike, ClearFrame, ErrorFrame,
  MessageFrame, PolicyFrame, Welcome, PcPresence, MobileState, PresenceAdapter, PresenceSink, PresenceUpdate, PresenceSignals, PresenceMemory,
  PresenceOptions, PcPresenceOptions, PowerMonitorLike, ElectronAdapterOptions, LinuxLockSource, DbusBusLike, ScreenSaverSourceOptions,
  AppLifecycle, PushTokenSource, MobileEvents];
`;

let dir: string | undefined;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('client entry points (package.json exports)', () => {
  it('every type and function the README and doc comments name type-checks from another project', async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-types-'));
    await mkdir(join(dir, 'node_modules'));
    await symlink(ROOT, join(dir, 'node_modules', 'switchboard'), 'dir');
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2023', 'DOM'], strict: true, noEmit: true, types: [] },
      files: ['consumer.ts'],
    }));
    await writeFile(join(dir, 'consumer.ts'), CONSUMER);
    const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
    const result = await run(tsc, ['-p', dir], { cwd: dir }).then(() => '', (e: { stdout?: string; message: string }) => e.stdout || e.message);
    expect(result).toBe('');
  }, 60_000);
});
