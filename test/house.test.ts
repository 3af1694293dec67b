import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The house (STYLE.md "Seams"; README "Architecture"): each folder is a floor and an import only goes down.
 * Read from the source text, so a forbidden import fails here before anyone has to notice it in review.
 */
const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..'));

/** Floor of each production folder, from the ground up; a file may import its own folder or a lower floor. */
const FLOORS: Record<string, number> = {
  protocol: 0,
  base: 1,
  clients: 1, // client libraries: the wire types only, nothing of the server
  'chat-server': 1, // the chat-server SDK (Node): the wire types and msgpackr, nothing of the server
  bus: 2,
  store: 2,
  actors: 3,
  gateway: 4,
  senders: 4,
  cluster: 5,
  runtime: 6,
  bin: 7,
  '.': 7, // index.ts, the public entry
};

/** Packages a floor must not use (senders run inside Piscina workers: no actors, no NATS). */
const FORBIDDEN_PACKAGES: Record<string, RegExp> = {
  protocol: /^(nact|@nats-io\/|ws$|pino|prom-client|piscina)/,
  senders: /^(nact|@nats-io\/)/,
  actors: /^(@nats-io\/|ws$)/,
  gateway: /^(@nats-io\/|nact)/,
  store: /^(@nats-io\/|nact|ws$)/,
  bus: /^(@nats-io\/|nact|ws$)/,
  clients: /^(?!\.)/, // no packages at all: the browser has none of them
  'chat-server': /^(?!msgpackr$)/, // the NATS connection is the caller's (injected), so only the codec
};

interface SourceFile {
  path: string; // relative to ROOT, e.g. actors/decide.ts
  folder: string;
  imports: { spec: string; target?: string }[];
}

function sources(): SourceFile[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(ROOT, dir))) {
      const rel = dir === '.' ? name : join(dir, name);
      if (statSync(join(ROOT, rel)).isDirectory()) walk(rel);
      else if (rel.endsWith('.ts') && !rel.endsWith('.d.ts') && !rel.endsWith('.test.ts')) files.push(rel);
    }
  };
  for (const folder of Object.keys(FLOORS)) {
    if (folder === '.') files.push('index.ts');
    else {
      try {
        walk(folder);
      } catch {
        // a floor that does not exist (yet) has nothing to check
      }
    }
  }
  return files.map((path) => {
    const text = readFileSync(join(ROOT, path), 'utf8');
    const imports = [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'|import\('([^']+)'\)/gm)].map((m) => {
      const spec = m[1] ?? m[2] ?? m[3];
      const target = spec.startsWith('.') ? normalize(join(dirname(path), spec)).replace(/\.js$/, '.ts') : undefined;
      return { spec, target };
    });
    return { path, folder: path.includes('/') ? path.split('/')[0] : '.', imports };
  });
}

const folderOf = (path: string): string => (path.includes('/') ? path.split('/')[0] : '.');

describe('the house: imports only go down', () => {
  const files = sources();

  it('reads the production folders', () => {
    expect(files.some((f) => f.path === 'actors/decide.ts')).toBe(true);
    expect(files.some((f) => f.path === 'runtime/start.ts')).toBe(true);
  });

  it('no file imports a higher floor or a sibling floor, and cluster/ is imported only by runtime/', () => {
    const upward: string[] = [];
    for (const f of files) {
      for (const i of f.imports) {
        if (i.target === undefined) continue;
        const to = folderOf(i.target);
        if (to === f.folder) continue;
        if (!(to in FLOORS)) upward.push(`${f.path} -> ${i.spec} (outside the house)`);
        else if (FLOORS[to] >= FLOORS[f.folder]) upward.push(`${f.path} -> ${i.spec}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('no floor uses a package it must not (senders: neither nact nor NATS; clients: no package)', () => {
    const bad: string[] = [];
    for (const f of files) {
      const rule = FORBIDDEN_PACKAGES[f.folder];
      if (!rule) continue;
      for (const i of f.imports) if (i.target === undefined && !i.spec.startsWith('node:') && rule.test(i.spec)) bad.push(`${f.path} -> ${i.spec}`);
      if (f.folder === 'clients') for (const i of f.imports) if (i.spec.startsWith('node:')) bad.push(`${f.path} -> ${i.spec}`);
    }
    expect(bad).toEqual([]);
  });

  it('no two files import each other, and there is no longer circle either', () => {
    const graph = new Map(files.map((f) => [f.path, f.imports.flatMap((i) => (i.target ? [relative('.', i.target)] : []))]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (n: string): void => {
      state.set(n, 'open');
      stack.push(n);
      for (const m of graph.get(n) ?? []) {
        if (!graph.has(m)) continue;
        if (state.get(m) === 'open') cycles.push([...stack.slice(stack.indexOf(m)), m].join(' -> '));
        else if (!state.has(m)) visit(m);
      }
      stack.pop();
      state.set(n, 'done');
    };
    for (const n of graph.keys()) if (!state.has(n)) visit(n);
    expect(cycles).toEqual([]);
  });
});
