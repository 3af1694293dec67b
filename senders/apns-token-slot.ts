/**
 * One APNs provider token shared by every sender thread of an app (SWITCHBOARD_SENDER_THREADS > 1), over a
 * SharedArrayBuffer the pool makes in the main thread and hands each worker in its `workerData`. Apple counts token
 * renewals ("APNs reports an error if you recreate your tokens more than once every 20 minutes": 429
 * TooManyProviderTokenUpdates), and each thread signing its own token made N tokens in the same second; with the slot
 * the first thread that needs a token signs it and the others take it.
 *
 * Why our own: a JWT string and two times under a lock; a shared-memory store from npm would be a native addon or a
 * server for ~60 lines. The lock is held only to read or write the slot (and to sign, ~0.1 ms), never across I/O.
 *
 * Layout (bytes): [0,4) lock (Int32, 0 free / 1 held), [4,8) JWT length, [8,16) issuedAt (Float64, epoch ms),
 * [16,24) forcedAt (Float64, epoch ms: the last signing forced by 403 ExpiredProviderToken), [24,…) the JWT (ASCII).
 */
export const TOKEN_SLOT_BYTES = 1024;
const JWT_AT = 24;

/** What the slot holds: the token and when it was signed (epoch ms), and the last forced renewal (epoch ms). */
export interface SlotToken {
  jwt: string;
  issuedAt: number;
  forcedAt: number;
}

export class TokenSlot {
  private readonly lockWord: Int32Array;
  private readonly times: Float64Array;
  private readonly bytes: Uint8Array;

  /** `buffer`: a SharedArrayBuffer of TOKEN_SLOT_BYTES (`TokenSlot.create()` in the main thread). */
  constructor(readonly buffer: SharedArrayBuffer) {
    if (buffer.byteLength !== TOKEN_SLOT_BYTES) throw new RangeError(`a token slot is ${TOKEN_SLOT_BYTES} bytes, not ${buffer.byteLength}`);
    this.lockWord = new Int32Array(buffer, 0, 2);
    this.times = new Float64Array(buffer, 8, 2);
    this.bytes = new Uint8Array(buffer, JWT_AT);
  }

  static create(): SharedArrayBuffer {
    return new SharedArrayBuffer(TOKEN_SLOT_BYTES);
  }

  /**
   * Runs `update` with what the slot holds (undefined while empty) under the lock; what it returns (a new token) is
   * written before the lock is released. `update` must be synchronous and short (it may sign a token).
   */
  exchange(update: (held: SlotToken | undefined) => SlotToken | undefined): SlotToken | undefined {
    this.lock();
    try {
      const length = this.lockWord[1];
      const held = length === 0 ? undefined : { jwt: Buffer.from(this.bytes.subarray(0, length)).toString('latin1'), issuedAt: this.times[0], forcedAt: this.times[1] };
      const next = update(held);
      if (next === undefined) return held;
      const jwt = Buffer.from(next.jwt, 'latin1');
      if (jwt.length > this.bytes.length) throw new RangeError(`a provider token of ${jwt.length} bytes does not fit the slot`);
      this.bytes.set(jwt);
      this.times[0] = next.issuedAt;
      this.times[1] = next.forcedAt;
      this.lockWord[1] = jwt.length;
      return next;
    } finally {
      this.unlock();
    }
  }

  private lock(): void {
    // Another thread holds it only while it reads, writes or signs: wait for its release (Atomics.wait is allowed in
    // worker threads and in Node's main thread), at most 10 ms at a time, and try again.
    while (Atomics.compareExchange(this.lockWord, 0, 0, 1) !== 0) Atomics.wait(this.lockWord, 0, 1, 10);
  }

  private unlock(): void {
    Atomics.store(this.lockWord, 0, 0);
    Atomics.notify(this.lockWord, 0, 1);
  }
}
