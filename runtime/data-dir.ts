import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { DataDirLock, DataDirLockedError } from '../store/data-dir-lock.js';
import { StartError } from './start-error.js';

/**
 * Creates the data dir (SWITCHBOARD_DATA_DIR) and takes its lock, failing with a `StartError` that names the cause:
 * a path that cannot be created, a read-only or unwritable dir, or another node holding it (exit 2, its pid named).
 *
 * The dir is created one component at a time: Node 20's `mkdir(…, { recursive: true })` never settles for some
 * paths (under /proc), which would hang the start instead of failing it.
 */
export async function openDataDir(dataDir: string): Promise<DataDirLock> {
  const dir = resolve(dataDir);
  await createDir(dir, dataDir);
  try {
    return await DataDirLock.acquire(dir);
  } catch (e) {
    if (e instanceof DataDirLockedError) throw new StartError(e.message, 2, { cause: e });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EROFS') throw new StartError(`data dir ${dir} is on a read-only file system (EROFS); set SWITCHBOARD_DATA_DIR to a writable directory`, 1, { cause: e });
    if (code === 'EACCES' || code === 'EPERM') throw new StartError(`data dir ${dir} is not writable by this user (${code})`, 1, { cause: e });
    throw new StartError(`data dir ${dir}: cannot create the lock file (${code ?? (e as Error).message})`, 1, { cause: e });
  }
}

async function createDir(dir: string, configured: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      const s = await stat(d);
      if (!s.isDirectory()) throw new StartError(`data dir ${configured}: ${d} exists and is not a directory`);
      break;
    } catch (e) {
      if (e instanceof StartError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || d === dirname(d)) throw cannotCreate(configured, d, e);
      missing.unshift(d);
    }
  }
  for (const d of missing) {
    try {
      await mkdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotCreate(configured, d, e);
    }
  }
}

function cannotCreate(configured: string, at: string, e: unknown): StartError {
  const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  const why = code === 'EROFS' ? 'read-only file system' : code === 'EACCES' ? 'permission denied' : code;
  return new StartError(`data dir ${configured} cannot be created: ${at} (${why})`, 1, { cause: e });
}
