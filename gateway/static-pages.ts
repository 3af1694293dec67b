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
 * The modules of the client SDK that run in a browser, compiled by the package's own build (`npm ci` runs it), served
 * under `/pages/sdk/` so the playground's PC and phone are real clients of the SDK. Electron, Linux and the chat-server
 * client are not for pages. Every module these import must be listed too (test/static-pages.test.ts walks the imports).
 */
export const BROWSER_SDK_MODULES = [
  'client.js', 'backoff.js', 'close-codes.js', 'emitter.js', 'read-frames.js', 'recent-ids.js', 'wire.js', 'pc-presence.js',
  'pc-presence-machine.js', 'mobile.js', 'adapters/browser.js',
] as const;

/**
 * The page assets shipped in the package's `pages/` folder (plain HTML, CSS and JS: no build step of their own), plus
 * the browser SDK modules from `dist/clients/` as `sdk/<module>`. Found by walking up from this module, so it works
 * from the sources (tests) and from `dist/` alike. Only files present at start with a known type are served, read
 * once; no path from a request ever reaches the file system.
 */
export class StaticPages {
  private readonly files = new Map<string, { type: string; body: Buffer }>();

  constructor(root: string = findPackageRoot()) {
    const dir = join(root, 'pages');
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (type) this.files.set(name, { type, body: readFileSync(join(dir, name)) });
    }
    const sdk = join(root, 'dist', 'clients');
    for (const name of BROWSER_SDK_MODULES) {
      const file = join(sdk, name);
      // Without a build there is no SDK to serve; the playground then says its modules failed to load.
      if (existsSync(file)) this.files.set(`sdk/${name}`, { type: TYPES['.js'], body: stripSourceMap(readFileSync(file)) });
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

/** The source map files are not served; drop the comment that would make a browser's devtools ask for them. */
function stripSourceMap(body: Buffer): Buffer {
  return Buffer.from(body.toString('utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
}

/** The nearest folder above this module holding package.json and pages/ (the package root). */
export function findPackageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'pages'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no pages/ folder above ${from}`);
  }
}
