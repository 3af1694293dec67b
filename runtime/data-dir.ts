import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { DataDirLock, DataDirLockedError } from '../store/data-dir-lock.js';
import { StartError } from './start-error.js';

/**
 * Creates the data dir (SWITCHBOARD_DATA_DIR) and takes its lock, failing with a `StartError` whose line names the
 * variable and the cause: a path that is not a directory (exit 2: the value is wrong), another node holding it (exit
 * 2, its pid named); a path that cannot be created, a read-only or unwritable dir (exit 1: the machine is wrong).
 *
 * The dir is created one component at a time: Node 20's `mkdir(…, { recursive: true })` never settles for some
 * paths (under /proc), which would hang the start instead of failing it.
 */
/** Named first on every line, so an operator sees which setting to change. */
const VAR = 'SWITCHBOARD_DATA_DIR:';

export async function openDataDir(dataDir: string): Promise<DataDirLock> {
  const dir = resolve(dataDir);
  await createDir(dir, dataDir);
  try {
    return await DataDirLock.acquire(dir);
  } catch (e) {
    if (e instanceof DataDirLockedError) throw new StartError(`${VAR} ${e.message}`, 2, { cause: e });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EROFS') throw new StartError(`${VAR} data dir ${dir} is on a read-only file system (EROFS); set it to a writable directory`, 1, { cause: e });
    if (code === 'EACCES' || code === 'EPERM') throw new StartError(`${VAR} data dir ${dir} is not writable by this user (${code})`, 1, { cause: e });
    throw new StartError(`${VAR} data dir ${dir}: cannot create the lock file (${code ?? (e as Error).message})`, 1, { cause: e });
  }
}

async function createDir(dir: string, configured: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      const s = await stat(d);
      if (!s.isDirectory()) throw new StartError(`${VAR} data dir ${configured}: ${d} exists and is not a directory`, 2);
      break;
    } catch (e) {
      if (e instanceof StartError) throw e;
      // ENOTDIR: a file on the way up; walking up finds it and says so (a wrong value, exit 2).
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || d === dirname(d)) throw cannotCreate(configured, d, e);
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
  return new StartError(`${VAR} data dir ${configured} cannot be created: ${at} (${why})`, 1, { cause: e });
}
