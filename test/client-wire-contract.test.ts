import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { messageIdProblem } from '../clients/read-frames.js';
import { CLIENT_FRAME_TYPES, MAX_CLIENT_FRAME_BYTES, MAX_MESSAGE_ID_CHARS, MAX_READ_IDS, MOBILE_OSES, PRESENCE_STATES, PRESENCE_STATES_BY_KIND } from '../clients/wire.js';
import { FRAMES_BY_KIND, MAX_FRAME_BYTES, MAX_READ_IDS as SERVER_MAX_READ_IDS } from '../protocol/frames.js';
import { isMessageId, MAX_ID_CHARS } from '../protocol/fields.js';
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

  it('frame types and presence states by kind are section 2\'s', () => {
    expect([...CLIENT_FRAME_TYPES].sort()).toEqual([...new Set(['hello', ...FRAMES_BY_KIND.pc, ...FRAMES_BY_KIND.mobile])].sort());
    expect([...PRESENCE_STATES_BY_KIND.pc].sort()).toEqual(['active', 'inactive']);
    expect([...PRESENCE_STATES_BY_KIND.mobile].sort()).toEqual(['background', 'foreground']);
    expect([...PRESENCE_STATES_BY_KIND.pc, ...PRESENCE_STATES_BY_KIND.mobile].sort()).toEqual([...PRESENCE_STATES].sort());
  });

  it('a message id the client lets through is one the server takes, and only those (any string)', () => {
    const ids = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 140 }),
      fc.string({ unit: 'binary', maxLength: 140 }),
      fc.string({ maxLength: 140 }),
      fc.constantFrom('', 'a'.repeat(128), 'a'.repeat(129), '😀'.repeat(128), '😀'.repeat(129), 'a\u0000b', 'x\u200by', '\ud800'),
    );
    fc.assert(fc.property(ids, (id) => (messageIdProblem(id) === undefined) === isMessageId(id)), { numRuns: 2000 });
  });
});
