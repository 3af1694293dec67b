import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT } from '../runtime/config.js';
import { API_KEY_FILE, JWT_SECRET_FILE } from '../runtime/secrets.js';

/** A command-line mistake (exit code 2) or a failed command (exit code 1): printed as one line. */
export class UsageError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2 = 2) {
    super(message);
  }
}

/**
 * The secret a running single node uses: the environment variable, else the file `start` generated in the data
 * dir (PROTOCOL.md section 1). Never printed; a missing one is a usage error naming both places.
 */
export async function readNodeSecret(env: NodeJS.ProcessEnv, variable: 'SWITCHBOARD_JWT_SECRET' | 'SWITCHBOARD_API_KEY'): Promise<string> {
  const value = env[variable];
  if (value) return value;
  const path = resolve(join(env.SWITCHBOARD_DATA_DIR || DEFAULT_DATA_DIR, variable === 'SWITCHBOARD_JWT_SECRET' ? JWT_SECRET_FILE : API_KEY_FILE));
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (text.length >= 16) return text;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
  }
  throw new UsageError(`no ${variable} set and no ${path}: set the variable, or run "switchboard start" once with this SWITCHBOARD_DATA_DIR`);
}

/** The node's HTTP origin for `send`: SWITCHBOARD_URL, else the listener address (0.0.0.0 / :: mean this host). */
export function nodeUrl(env: NodeJS.ProcessEnv): string {
  if (env.SWITCHBOARD_URL) return env.SWITCHBOARD_URL;
  let host = env.SWITCHBOARD_HOST || DEFAULT_HOST;
  if (host === '0.0.0.0' || host === '::') host = '127.0.0.1';
  if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${env.SWITCHBOARD_PORT || DEFAULT_PORT}`;
}
