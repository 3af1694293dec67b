import { Writable } from 'node:stream';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { WriteCork } from '../gateway/write-cork.js';

/** A Writable that records each call that reached the "socket": one entry per write/writev, with its chunks. */
function recorder(): { stream: Writable; calls: string[][] } {
  const calls: string[][] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      calls.push([String(chunk)]);
      cb();
    },
    writev(chunks, cb) {
      calls.push(chunks.map((c) => String(c.chunk)));
      cb();
    },
  });
  return { stream, calls };
}

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('WriteCork (issue 13: one write per socket per turn)', () => {
  it('holds every write of a turn and releases them as one writev', async () => {
    const cork = new WriteCork();
    const { stream, calls } = recorder();
    for (const c of ['a', 'b', 'c']) {
      cork.hold(stream);
      stream.write(c);
    }
    expect(calls).toEqual([]);
    expect(cork.size).toBe(1);
    await nextTurn();
    expect(calls).toEqual([['a', 'b', 'c']]);
    expect(stream.writableCorked).toBe(0);
  });

  it('releases every socket held in the turn, each with its own writes', async () => {
    const cork = new WriteCork();
    const one = recorder();
    const two = recorder();
    cork.hold(one.stream);
    one.stream.write('1');
    cork.hold(two.stream);
    two.stream.write('2');
    cork.hold(one.stream);
    one.stream.write('3');
    await nextTurn();
    expect(one.calls).toEqual([['1', '3']]);
    expect(two.calls).toEqual([['2']]);
  });

  it('leaves a destroyed socket alone and ignores a missing one', async () => {
    const cork = new WriteCork();
    const { stream } = recorder();
    stream.destroy();
    cork.hold(stream);
    cork.hold(undefined);
    expect(cork.size).toBe(0);
  });

  describe('over a real WebSocket', () => {
    it('keeps one WebSocket frame per message (no protocol change)', async () => {
      const cork = new WriteCork();
      const wss = new WebSocketServer({ noServer: true });
      let writes = 0;
      const httpServer = createServer();
      httpServer.on('upgrade', (req, socket: Socket, head) => {
        const writev = (socket as unknown as { _writev: (...a: unknown[]) => void })._writev.bind(socket);
        // Every syscall-level write of this socket goes through _writev once corked chunks are released.
        (socket as unknown as { _writev: (...a: unknown[]) => void })._writev = (...a) => (writes++, writev(...a));
        wss.handleUpgrade(req, socket, head, (ws) => {
          ws.once('message', () => {
            writes = 0;
            for (let i = 0; i < 5; i++) {
              cork.hold(socket);
              ws.send(`{"n":${i}}`);
            }
          });
        });
      });
      await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', () => r()));
      const port = (httpServer.address() as { port: number }).port;
      const client = new WebSocket(`ws://127.0.0.1:${port}`);
      const got: string[] = [];
      const all = new Promise<void>((resolve) => client.on('message', (m) => got.push(String(m)) === 5 && resolve()));
      await new Promise((r) => client.once('open', r));
      client.send('go');
      await all;
      expect(got).toEqual([0, 1, 2, 3, 4].map((n) => `{"n":${n}}`));
      expect(writes).toBe(1);
      client.terminate();
      await new Promise<void>((r) => httpServer.close(() => r()));
      httpServer.closeAllConnections();
    });
  });
});
