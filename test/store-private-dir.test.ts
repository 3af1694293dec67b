import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileDecisionLog } from '../store/decision-log.js';
import { FileDeviceRegistry } from '../store/file-device-registry.js';
import { FileHeldStore } from '../store/file-held-store.js';
import { FileInbox } from '../store/file-inbox.js';
import { FilePolicyStore } from '../store/file-policy-store.js';

/** The data dir's stores keep push tokens and message texts: no other user of the machine may read them. */
describe('store folders are private to the node\'s user (0700)', () => {
  let root: string;
  let umask: number;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'sb-private-'));
    umask = process.umask(0o022); // the usual one: folders 0755, files 0644
  });
  afterEach(async () => {
    process.umask(umask);
    await rm(root, { recursive: true, force: true });
  });

  const stores: [string, (dir: string) => Promise<{ close(): Promise<void> } | object>][] = [
    ['devices', (dir) => FileDeviceRegistry.open(dir)],
    ['policies', (dir) => FilePolicyStore.open(dir)],
    ['inbox', (dir) => FileInbox.open(dir)],
    ['held', (dir) => FileHeldStore.open(dir)],
    ['decisions', (dir) => FileDecisionLog.open(dir)],
  ];

  it.each(stores)('%s: made 0700, and narrowed to 0700 when an earlier version made it 0755', async (name, open) => {
    const fresh = join(root, 'fresh', name);
    await close(await open(fresh));
    expect((await stat(fresh)).mode & 0o777).toBe(0o700);
    const old = join(root, 'old', name);
    await mkdir(old, { recursive: true, mode: 0o755 });
    await writeFile(join(old, 'left-by-an-earlier-version'), '');
    await close(await open(old));
    expect((await stat(old)).mode & 0o777).toBe(0o700);
  });
});

async function close(store: object): Promise<void> {
  const c = (store as { close?: () => Promise<void> }).close;
  if (c) await c.call(store);
}
