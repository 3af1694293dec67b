import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StartError } from './start-error.js';
import { fileErrorCode } from '../base/file-errors.js';

/** Files in the data dir that hold the single-node secrets generated at first start (PROTOCOL.md section 1). */
export const JWT_SECRET_FILE = 'jwt-secret';
export const API_KEY_FILE = 'api-key';

export interface NodeSecrets {
  jwtSecret: string;
  apiKey: string;
  /** Paths of generated or reused secret files, printed at start (never the values). */
  files: string[];
}

/**
 * The configured secrets win; otherwise each is read from the data dir, or generated there (mode 0600)
 * the first time, so `npm start` needs no setup step and a restart keeps clients' tokens valid. A secret file that
 * exists but cannot be read (EACCES, EISDIR, …) is a `StartError` (exit 1) naming it and the variable that replaces it.
 */
export async function loadSecrets(dataDir: string, configured: { jwtSecret?: string; apiKey?: string }): Promise<NodeSecrets> {
  await mkdir(dataDir, { recursive: true });
  const files: string[] = [];
  const get = async (value: string | undefined, file: string, variable: string): Promise<string> => {
    if (value) return value;
    const path = resolve(join(dataDir, file));
    files.push(path);
    try {
      const existing = (await readFile(path, 'utf8')).trim();
      if (existing.length >= 16) return existing;
    } catch (e) {
      // Not regenerated over a file that exists: clients' tokens signed with it would all stop working.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new StartError(`cannot read the generated secret ${path} (${fileErrorCode(e)}); make it readable by this user or set ${variable}`, 1, { cause: e });
      }
    }
    const fresh = randomBytes(32).toString('base64url');
    await writeFile(path, fresh + '\n', { mode: 0o600 });
    return fresh;
  };
  return {
    jwtSecret: await get(configured.jwtSecret, JWT_SECRET_FILE, 'SWITCHBOARD_JWT_SECRET'),
    apiKey: await get(configured.apiKey, API_KEY_FILE, 'SWITCHBOARD_API_KEY'),
    files,
  };
}
