import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * README "HTTP endpoints" names every route the gateway serves under /v1/ (read from the route table in
 * gateway/http-api.ts) with each of its methods, and the operator endpoints.
 */
const read = (path: string) => readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), 'utf8');
const readme = read('README.md');
const section = readme.slice(readme.indexOf('## HTTP endpoints'), readme.indexOf('\n## ', readme.indexOf('## HTTP endpoints') + 1));

/** `{ pattern: ['users', ':id', 'devices', ':id'], methods: { PUT: …, DELETE: … } }` -> `/v1/users/{u}/devices/{d}`, [PUT, DELETE]. */
function routes(source: string): [string, string[]][] {
  const re = /\{ pattern: \[([^\]]*)\], methods: \{([^}]*)\}(?:, \w+: \w+)* \}/g; // a flag may follow (`noApiKey: true`)
  return [...source.matchAll(re)].map((m) => {
    const names = ['{u}', '{d}'];
    const segments = m[1].split(',').map((s) => s.trim().replace(/'/g, '')).map((s) => (s === ':id' ? names.shift()! : s));
    return [`/v1/${segments.join('/')}`, [...m[2].matchAll(/([A-Z]+):/g)].map((x) => x[1])];
  });
}

/** The table rows naming `path` (followed by a backtick or a query string). */
function rows(path: string): string[] {
  return section.split('\n').filter((line) => line.startsWith('|') && new RegExp('`' + path.replace(/[{}?.]/g, '\\$&') + '[`?]').test(line));
}

/** The first cell of a table row: its methods. */
const methodCell = (line: string) => line.split('|')[1];

describe('README "HTTP endpoints"', () => {
  const table = routes(read('gateway/http-api.ts'));

  it('reads the route table (the check can fail)', () => {
    expect(table.length).toBeGreaterThanOrEqual(10);
    expect(table).toContainEqual(['/v1/users/{u}/devices/{d}', ['PUT', 'DELETE']]);
    expect(rows('/v1/nowhere')).toEqual([]);
  });

  it.each(table)('lists %s with its methods %j', (path, methods) => {
    for (const method of methods) {
      expect(rows(path).some((line) => methodCell(line).includes(`\`${method}\``)), `${method} ${path}`).toBe(true);
    }
  });

  it.each(['/healthz', '/readyz', '/metrics'])('lists %s', (path) => {
    expect(rows(path).some((line) => methodCell(line).includes('`GET`'))).toBe(true);
  });

  it('points to PROTOCOL.md section 3', () => {
    expect(section).toMatch(/\(docs\/PROTOCOL\.md\)[^|]*section 3/);
  });
});
