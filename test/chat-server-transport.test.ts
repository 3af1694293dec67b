import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChatServerClient } from '../chat-server/client.js';

/** What a transport failure says (the SDK and the CLI print it): where it went and why, whatever shape undici's cause has. */
afterEach(() => {
  vi.unstubAllGlobals();
});

describe('chat-server SDK transport errors', () => {
  it('names every address of a dual-stack failure (an AggregateError with an empty message), not "fetch failed ()"', async () => {
    const refused = (addr: string) => Object.assign(new Error(`connect ECONNREFUSED ${addr}`), { code: 'ECONNREFUSED' });
    vi.stubGlobal('fetch', async () => {
      throw new TypeError('fetch failed', { cause: Object.assign(new AggregateError([refused('::1:7400'), refused('127.0.0.1:7400')], ''), { code: 'ECONNREFUSED' }) });
    });
    const sdk = new ChatServerClient({ http: { url: 'http://localhost:7400', apiKey: 'k' }, retry: { attempts: 1 } });
    const e = (await sdk.send({ id: 'm1', to: 'u' }).catch((err: unknown) => err)) as Error;
    expect(e).toMatchObject({ code: 'transport', temporary: true });
    expect(e.message).toBe('HTTP POST http://localhost:7400/v1/messages failed: fetch failed (connect ECONNREFUSED ::1:7400; connect ECONNREFUSED 127.0.0.1:7400)');
  });

  it('falls back to the code of a cause without any message', async () => {
    vi.stubGlobal('fetch', async () => {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error(''), { code: 'UND_ERR_SOCKET' }) });
    });
    const sdk = new ChatServerClient({ http: { url: 'http://127.0.0.1:7400/', apiKey: 'k' }, retry: { attempts: 1 } });
    const e = (await sdk.send({ id: 'm1', to: 'u' }).catch((err: unknown) => err)) as Error;
    expect(e.message).toBe('HTTP POST http://127.0.0.1:7400/v1/messages failed: fetch failed (UND_ERR_SOCKET)');
  });
});
