import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { messageIdProblem } from '../clients/read-frames.js';
import { MAX_CLIENT_FRAME_BYTES, MAX_MESSAGE_ID_CHARS, MAX_READ_IDS, MOBILE_OSES } from '../clients/wire.js';
import { MAX_FRAME_BYTES, MAX_READ_IDS as SERVER_MAX_READ_IDS } from '../protocol/frames.js';
import { isId, MAX_ID_CHARS } from '../protocol/fields.js';
import { MOBILE_OS } from '../protocol/message.js';

/**
 * The client SDK keeps its own copies of the contract's numbers and rules (it is served to pages without server
 * code, clients/wire.ts): held here to the server's, so a frame the client lets through is one the server takes.
 */
describe('client copies of the contract', () => {
  it('limits and OS values equal the server\'s', () => {
    expect(MAX_CLIENT_FRAME_BYTES).toBe(MAX_FRAME_BYTES);
    expect(MAX_READ_IDS).toBe(SERVER_MAX_READ_IDS);
    expect(MAX_MESSAGE_ID_CHARS).toBe(MAX_ID_CHARS);
    expect([...MOBILE_OSES].sort()).toEqual([...MOBILE_OS].sort());
  });

  it('a message id the client lets through is one the server takes, and only those (any string)', () => {
    const ids = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 140 }),
      fc.string({ unit: 'binary', maxLength: 140 }),
      fc.string({ maxLength: 140 }),
      fc.constantFrom('', 'a'.repeat(128), 'a'.repeat(129), '😀'.repeat(128), '😀'.repeat(129), 'a\u0000b', 'x\u200by', '\ud800'),
    );
    fc.assert(fc.property(ids, (id) => (messageIdProblem(id) === undefined) === isId(id)), { numRuns: 2000 });
  });
});
