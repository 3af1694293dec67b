import { readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BROWSER_SDK_MODULES } from '../gateway/static-pages.js';

/**
 * The browser SDK served under `/pages/sdk/` is a closed set: every relative import of a listed module is listed too,
 * or the page that loads it fails in the browser with a 404 for the missing module (the playground did, when
 * `read-frames.js` was added to the client and not to the list). Read from the sources the build compiles.
 */
const CLIENTS = fileURLToPath(new URL('../clients/', import.meta.url));

async function relativeImports(module: string): Promise<string[]> {
  const source = await readFile(join(CLIENTS, module.replace(/\.js$/, '.ts')), 'utf8');
  const found: string[] = [];
  // Imports and re-exports; `import type` / `export type` statements vanish from the build and are skipped.
  for (const m of source.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?\bfrom\s+'(\.{1,2}\/[^']+)'|\bimport\s*\(\s*'(\.{1,2}\/[^']+)'\s*\)/gm)) {
    if (m[1] !== undefined) continue;
    found.push(relative(CLIENTS, normalize(join(CLIENTS, dirname(module), m[2] ?? m[3]))).split('\\').join('/'));
  }
  return found;
}

describe('browser SDK modules', () => {
  it('every module a listed one imports is listed (served to pages)', async () => {
    const listed = new Set<string>(BROWSER_SDK_MODULES);
    const missing: string[] = [];
    for (const module of BROWSER_SDK_MODULES) {
      for (const imported of await relativeImports(module)) if (!listed.has(imported)) missing.push(`${module} -> ${imported}`);
    }
    expect(missing).toEqual([]);
  });
});
