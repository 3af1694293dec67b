import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * docs/PROTOCOL.md is the project's copy of the public contract, so a clone has it. Where the shared original
 * sits next to the repository (../shared/PROTOCOL.md), the copy must equal it: refresh the copy when it changes.
 */
const root = new URL('../', import.meta.url);
const copy = fileURLToPath(new URL('docs/PROTOCOL.md', root));
const shared = fileURLToPath(new URL('../shared/PROTOCOL.md', root));

describe('docs/PROTOCOL.md', () => {
  it('exists and is the contract', () => {
    expect(readFileSync(copy, 'utf8')).toMatch(/^# Switchboard public contract, v\d+\.\d+/);
  });

  it.runIf(existsSync(shared))('equals ../shared/PROTOCOL.md (copy it over when the contract changes)', () => {
    expect(readFileSync(copy, 'utf8')).toBe(readFileSync(shared, 'utf8'));
  });

  it('README links the local copy', () => {
    expect(readFileSync(fileURLToPath(new URL('README.md', root)), 'utf8')).toContain('](docs/PROTOCOL.md)');
  });
});
