import type { Writable } from 'node:stream';

/**
 * Holds each socket's writes until the end of the current turn of the event loop, then lets every held socket
 * write at once: several frames for one socket in one turn leave in one `writev` instead of one syscall each.
 * The wire is unchanged (one WebSocket frame per message, PROTOCOL.md section 2); only the syscalls coalesce.
 *
 * ws corks and uncorks the socket around every frame it sends (`Sender.sendFrame`); Node counts corks, so a frame
 * written while we hold the socket stays buffered until our own `uncork()`. `end()` and `destroy()` release or drop
 * the buffer themselves, so a socket closed meanwhile needs nothing from us.
 */
export class WriteCork {
  private held: Writable[] = [];
  private readonly flushBound = (): void => this.flush();

  /** Call before writing to `socket`; it is released by one `setImmediate` shared by all sockets held this turn. */
  hold(socket: Writable | undefined): void {
    if (!socket || socket.writableCorked > 0 || socket.destroyed) return; // already held (or ws is mid-frame)
    socket.cork();
    if (this.held.push(socket) === 1) setImmediate(this.flushBound);
  }

  /** Sockets held right now (tests). */
  get size(): number {
    return this.held.length;
  }

  /** Releases every held socket (also called by the timer). */
  flush(): void {
    const held = this.held;
    this.held = [];
    for (const s of held) if (s.writableCorked > 0) s.uncork();
  }
}
