import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * The page assets shipped in the package's `pages/` folder (plain HTML, CSS and JS: no build step). Found by walking
 * up from this module, so it works from the sources (tests) and from `dist/` alike. Only the files present at start
 * with a known type are served, read once; no path from a request ever reaches the file system.
 */
export class StaticPages {
  private readonly files = new Map<string, { type: string; body: Buffer }>();

  constructor(dir: string = findPagesDir()) {
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (type) this.files.set(name, { type, body: readFileSync(join(dir, name)) });
    }
  }

  has(name: string): boolean {
    return this.files.has(name);
  }

  /** Answers the named file, or false when there is none. Pages must not be framed by other sites. */
  serve(res: ServerResponse, name: string, head = false): boolean {
    const file = this.files.get(name);
    if (!file) return false;
    res.writeHead(200, {
      'content-type': file.type,
      'content-length': file.body.length,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
      'referrer-policy': 'no-referrer',
    });
    res.end(head ? undefined : file.body);
    return true;
  }
}

/** `pages/` beside the nearest package.json above this module. */
export function findPagesDir(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'pages'))) return join(dir, 'pages');
    if (dirname(dir) === dir) throw new Error(`no pages/ folder above ${from}`);
  }
}
