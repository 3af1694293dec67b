import { describe, expect, it } from 'vitest';
import { isCasConflict, isCasOutcomeUnknown } from '../cluster/jetstream-setup.js';

/** How the cluster's KV users tell a lost compare-and-set from an unknown outcome and from other errors. */
describe('KV compare-and-set errors', () => {
  const apiError = (code: number, description: string) => Object.assign(new Error(description), { name: 'JetStreamApiError', code });

  it.each([
    ['10071 wrong last sequence', apiError(10071, 'wrong last sequence: 41'), true, false],
    ['the same, as text only', new Error('wrong last sequence: 41'), true, false],
    ['an older client\'s "key exists"', new Error('key exists'), true, false],
    ['10164 wrong last sequence unknown', apiError(10164, 'wrong last sequence unknown'), false, true],
    ['a timeout', Object.assign(new Error('TIMEOUT'), { name: 'TimeoutError', code: 'TIMEOUT' }), false, false],
    ['no responders', new Error('503 no responders'), false, false],
    ['another API error (10058 stream name in use)', apiError(10058, 'stream name already in use'), false, false],
  ])('%s: conflict %s, outcome unknown %s', (_, err, conflict, unknown) => {
    expect(isCasConflict(err)).toBe(conflict);
    expect(isCasOutcomeUnknown(err)).toBe(unknown);
  });
});
