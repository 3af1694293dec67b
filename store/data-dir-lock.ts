import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** The lock file in the data dir: `{"pid":…,"host":…,"since":…,"nonce":…}` of the node that holds it. */
export const LOCK_FILE = 'switchboard.lock';

/** A live process holds the data dir: the second node must not start (it would append to the same files). */
export class DataDirLockedError extends Error {
  constructor(readonly dir: string, readonly pid: number) {
    super(`data dir ${dir} is in use by pid ${pid} (lock file ${join(dir, LOCK_FILE)})`);
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLockOptions {
  /** Whether a pid is a running process; injected by tests. Default `process.kill(pid, 0)`. */
  isAlive?: (pid: number) => boolean;
}

interface FileId {
  dev: number;
  ino: number;
}

/**
 * One node per data dir (issue 8 part 4): a lock file created with O_EXCL holding the owner's pid. A lock whose pid
 * is not running (the owner was killed) is stale and taken over. Liveness is a pid check, so the lock holds between
 * processes of one machine; a data dir shared by two machines (network file system) is not supported.
 *
 * Why not `proper-lockfile`: it decides staleness by the lock's mtime, refreshed by a timer, and records no pid, but
 * a refused node must name the holder's pid, and a node killed with SIGKILL must be restartable at once.
 */
export class DataDirLock {
  private released = false;

  private constructor(readonly dir: string, readonly path: string, private readonly dirId: FileId, private readonly nonce: string) {}

  /**
   * Takes the lock of `dir` (which must exist). Rejects with `DataDirLockedError` when a running process holds it,
   * or with the file system's error (EROFS for a read-only dir, EACCES) when the lock cannot be created.
   */
  static async acquire(dir: string, options: DataDirLockOptions = {}): Promise<DataDirLock> {
    const isAlive = options.isAlive ?? processIsAlive;
    const path = join(dir, LOCK_FILE);
    const dirId = idOf(await stat(dir));
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o644);
        try {
          const nonce = randomBytes(8).toString('hex');
          await handle.writeFile(JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString(), nonce }) + '\n');
          await handle.sync();
          return new DataDirLock(dir, path, dirId, nonce);
        } finally {
          await handle.close();
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw e;
      }
      const holder = await readHolder(path);
      if (holder !== undefined && holder !== process.pid && isAlive(holder)) throw new DataDirLockedError(dir, holder);
      // Stale (its process is gone, or it is our own pid reused after a container restart): take it over.
      await unlink(path).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    }
  }

  /**
   * Why this lock no longer guards the data dir, or undefined while it does: the dir or the lock file was deleted or
   * replaced (another inode at the dir's path, or a lock file without our nonce: inode numbers are reused at once).
   * Cheap (a stat and a small read): run it periodically.
   */
  async check(): Promise<string | undefined> {
    try {
      if (!sameFile(idOf(await stat(this.dir)), this.dirId)) return `data dir ${this.dir} was replaced by another directory`;
    } catch (e) {
      return `data dir ${this.dir} is gone (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
    }
    let content: string;
    try {
      content = await readFile(this.path, 'utf8');
    } catch (e) {
      return `lock file ${this.path} is gone (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
    }
    return content.includes(`"nonce":"${this.nonce}"`) ? undefined : `lock file ${this.path} was replaced`;
  }

  /** Removes the lock file if it is still ours. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if ((await this.check()) === undefined) await unlink(this.path).catch(() => undefined);
  }
}

/** The pid in a lock file, waiting briefly for a holder that created it and is still writing it. */
async function readHolder(path: string): Promise<number | undefined> {
  for (let i = 0; i < 10; i++) {
    try {
      const pid = (JSON.parse(await readFile(path, 'utf8')) as { pid?: unknown }).pid;
      if (typeof pid === 'number' && Number.isInteger(pid) && pid > 0) return pid;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined; // still unreadable: left by a crash between create and write
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function idOf(s: { dev: number; ino: number }): FileId {
  return { dev: s.dev, ino: s.ino };
}

function sameFile(a: FileId, b: FileId): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}
