import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The package as another project gets it: `npm pack` (needs `npm run build` first, as every integration test),
 * the tarball unpacked into a fresh folder's node_modules, and every `exports` subpath imported there by Node.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>; dependencies: Record<string, string>; bin: Record<string, string>; main: string;
};

/** `switchboard`, `switchboard/client`, … for every subpath of `exports` but `./package.json`. */
const specifiers = Object.keys(pkg.exports).filter((k) => k !== './package.json').map((k) => (k === '.' ? 'switchboard' : `switchboard${k.slice(1)}`));

let dir: string;
let files: string[];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchboard-pack-'));
  // --ignore-scripts: the build is already there; `prepare` would build again.
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  files = packed.files.map((f) => f.path);
  const into = join(dir, 'consumer', 'node_modules', 'switchboard');
  await mkdir(into, { recursive: true });
  await run('tar', ['-xzf', join(dir, packed.filename), '-C', into, '--strip-components=1']);
  // The package's dependencies, as npm would install them beside it (taken from this clone's node_modules).
  for (const dep of Object.keys(pkg.dependencies)) {
    await mkdir(dirname(join(dir, 'consumer', 'node_modules', dep)), { recursive: true });
    await symlink(join(ROOT, 'node_modules', dep), join(dir, 'consumer', 'node_modules', dep), 'dir');
  }
  await writeFile(join(dir, 'consumer', 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
}, 120_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('holds every file exports, main and bin name, and the pages the gateway serves', () => {
    const named = Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : [t.types, t.default]));
    for (const path of [...named, pkg.main, ...Object.values(pkg.bin), 'pages/playground.html', 'pages/dashboard.html', 'docs/PROTOCOL.md']) {
      expect(files, path).toContain(path.replace(/^\.\//, ''));
    }
  });

  it('leaves out the sources, tests and benchmarks', () => {
    expect(files.filter((f) => /^(test|bench|dist\/test|dist\/bench)\//.test(f) || /^[a-z-]+\/.*\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it.each(specifiers)('import %s works from another folder', async (specifier) => {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m)))`], { cwd: join(dir, 'consumer') });
    expect((JSON.parse(stdout) as string[]).length).toBeGreaterThan(0);
  });

  it('the client core is what README "Clients" imports, with the error class its events carry', async () => {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', "const { SwitchboardClient, ClientError } = await import('switchboard/client'); console.log(typeof SwitchboardClient.prototype.setPresence, new ClientError('token_failed', 'x') instanceof Error)"], { cwd: join(dir, 'consumer') });
    expect(stdout.trim()).toBe('function true');
  });
});
