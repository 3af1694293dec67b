import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The compiled browser clients (dist/clients, built by `npm run build`) import nothing but each other: no Node
 * module, no package, nothing from the server's folders (protocol/ is imported for types only, which compile away).
 * (The Node chat-server SDK lives in chat-server/.)
 */
const DIST = fileURLToPath(new URL('../dist/clients/', import.meta.url));

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : []);
}

/** Every module specifier in static imports, re-exports and dynamic imports. */
function specifiers(code: string): string[] {
  const re = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  return [...code.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3]);
}

describe('dist/clients for browsers', () => {
  const files = jsFiles(DIST);

  it('has the browser modules', () => {
    expect(files.map((f) => relative(DIST, f))).toEqual(expect.arrayContaining(['client.js', 'pc-presence.js', 'mobile.js', 'adapters/browser.js']));
  });

  it.each(files.map((f) => [relative(DIST, f), f]))('%s imports only sibling client modules', (_, file) => {
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      expect(spec, `${spec} in ${file}`).toMatch(/^\.\.?\//);
      const target = join(file, '..', spec);
      expect(relative(DIST, target).startsWith('..'), `${spec} leaves dist/clients`).toBe(false);
    }
  });

  it('the detector catches a Node import (the check can fail)', () => {
    expect(specifiers("import { readFile } from 'node:fs';\nexport { x } from './y.js';")).toEqual(['node:fs', './y.js']);
  });
});
