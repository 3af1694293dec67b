import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS, SwitchboardError, type ErrorCode } from '../protocol/errors.js';

describe('error registry', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

  it.each(Object.keys(ERRORS))('documents %s in README.md', (code) => {
    expect(readme).toMatch(new RegExp(`\\| \`${code}\` \\|`));
  });

  it('carries code, status, temporary flag, message and cause', () => {
    const cause = new Error('disk full');
    const e = new SwitchboardError('store_failed', 'inbox append', { cause });
    expect(e).toMatchObject({ code: 'store_failed', status: 503, temporary: true, cause });
    expect(e.toBody()).toEqual({ code: 'store_failed', message: 'durable store write failed: inbox append' });
    for (const code of Object.keys(ERRORS) as ErrorCode[]) expect(new SwitchboardError(code).message.length).toBeGreaterThan(5);
  });
});
