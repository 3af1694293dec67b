import type { Clock, Timer } from '../base/clock.js';
import type { Logger } from '../base/logger.js';

/**
 * How long a user's first decision of a tenure waits for its save, ms: the decisions of a burst (a takeover, a replay)
 * share the round. A tenure that routes for a user saves at once, so a value saved by an earlier tenure means the
 * crashed one in between had nothing for the user, and is no older history shown as the latest (see the class).
 */
export const FIRST_SAVE_DELAY_MS = 50;
/** Users written per step of a save round (their previous owner's values read, then their histories put, together). */
export const SAVE_CHUNK = 64;

export interface DecisionWriteBehindDeps {
  /** SWITCHBOARD_DECISION_SAVE_MS: a user whose history changed is saved within this, ms (> 0). */
  intervalMs: number;
  clock: Clock;
  log: Logger;
  /**
   * Saves the histories of `users` (at most SAVE_CHUNK): merges in what their previous owner saved, then puts each one
   * this node still owns, stamped with its tenure's lease epoch (cluster-node.ts). Must not reject.
   */
  save(users: string[]): Promise<void>;
}

/**
 * Cluster: each owner writes its users' decision histories behind to the decisions bucket (the value a graceful
 * handoff saves, cluster/decision-handoff.ts), so the history of PROTOCOL.md section 3 ("at least the last 100
 * decisions are kept") outlives a crash of the owner (kill -9, a machine lost), not only a handoff. A crash loses the
 * decisions of at most the last `intervalMs` (the embedded node's decision log loses its last 200 ms the same way).
 *
 * A user's first packed decision of a tenure (`touched(user, true)`) is saved within FIRST_SAVE_DELAY_MS, later ones
 * within `intervalMs`: one put per changed user per interval, whatever the user's message rate. So the value in the
 * bucket is either this tenure's, or an earlier tenure's when no tenure since routed for the user, and the next owner
 * may take whatever epoch saved it (it used to take only values of its own run of graceful handoffs, as a value left
 * by an earlier handoff could be older than a crashed tenure's decisions). Rounds run one at a time, users in chunks of
 * SAVE_CHUNK; a user changed during a round waits for the next. Nothing runs while no history changes.
 */
export class DecisionWriteBehind {
  private dirty = new Set<string>();
  /** Some user in `dirty` waits for its first save of the tenure. */
  private urgent = false;
  private timer?: Timer;
  /** When the armed timer fires (epoch ms). */
  private dueAt = Infinity;
  private round?: Promise<void>;
  private stopped = false;

  constructor(private readonly deps: DecisionWriteBehindDeps) {}

  /**
   * A decision of `user` was packed (the history's sink): saved within FIRST_SAVE_DELAY_MS when `first` (no save of the
   * user yet in this tenure), else within `intervalMs`.
   */
  touched(user: string, first: boolean): void {
    if (this.stopped) return;
    this.dirty.add(user);
    if (first) this.urgent = true;
    // A round under way re-arms when it ends (`flush`).
    if (this.round === undefined) this.arm(first ? FIRST_SAVE_DELAY_MS : this.deps.intervalMs);
  }

  /** Users waiting for their save (tests, metrics). */
  get waiting(): number {
    return this.dirty.size;
  }

  /**
   * Saves every user waiting now (the timer's round); resolves when done, never rejects. Asked for while a round is
   * under way, it runs another round after it for the users changed since that one began.
   */
  flush(): Promise<void> {
    if (this.round !== undefined) return this.round.then(() => this.flush());
    this.round = this.run().finally(() => {
      this.round = undefined;
      if (this.dirty.size > 0 && !this.stopped) this.arm(this.urgent ? FIRST_SAVE_DELAY_MS : this.deps.intervalMs);
    });
    return this.round;
  }

  /** No more saves: the timer is cleared, and a round under way is waited for. Partitions handed off save their own. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.deps.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty.clear();
    await this.round;
  }

  /** Fires within `ms` from now: an armed timer due later is brought forward, one due sooner is kept. */
  private arm(ms: number): void {
    const at = this.deps.clock.now() + ms;
    if (this.timer !== undefined) {
      if (this.dueAt <= at) return;
      this.deps.clock.clearTimeout(this.timer);
    }
    this.dueAt = at;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = undefined;
      this.dueAt = Infinity;
      void this.flush();
    }, ms);
  }

  private async run(): Promise<void> {
    const users = [...this.dirty];
    this.dirty.clear();
    this.urgent = false;
    for (let i = 0; i < users.length && !this.stopped; i += SAVE_CHUNK) {
      try {
        await this.deps.save(users.slice(i, i + SAVE_CHUNK));
      } catch (err) {
        this.deps.log.warn({ err, users: Math.min(SAVE_CHUNK, users.length - i) }, 'decision histories not saved');
      }
    }
  }
}
