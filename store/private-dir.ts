import { chmod, mkdir } from 'node:fs/promises';

/**
 * A store's folder, readable by this user only (0700): it holds what other local users must not read (push tokens,
 * message texts, read states, decisions). Under the usual umask 022 the folders and their logs came out 0755 / 0644,
 * and any user of the machine could read every device token and message. A folder made by an earlier version is
 * narrowed too; the files in it are then out of reach whatever their own mode.
 */
export async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}
