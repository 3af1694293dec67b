import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A small tmpfs mounted for a test (disk full, read-only data dir). Needs root; see `tmpfsRefusal`. */
export interface Tmpfs {
  dir: string;
  unmount(): void;
}

/** Mounts a tmpfs of `sizeKiB` at a fresh temp dir (`readOnly` for a read-only file system). */
export function mountTmpfs(sizeKiB: number, opts: { readOnly?: boolean } = {}): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k${opts.readOnly ? ',ro' : ''}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    unmount: () => {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Why a tmpfs cannot be mounted here (not root, no mount permission in a container), or undefined when it can. */
export function tmpfsRefusal(): string | undefined {
  try {
    mountTmpfs(64).unmount();
    return undefined;
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    return `mounting a tmpfs was refused (${stderr || (e as Error).message}); run as root to test disk full and read-only data dirs`;
  }
}
