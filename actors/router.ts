import type { OwnerMessage, OwnerQuery, OwnerReply } from '../protocol/index.js';
import { UserDirectory, type DirectoryDeps } from './directory.js';

/**
 * Everything a router node needs: bus, registry, push sink, clock, timings (SWITCHBOARD_ACK_TIMEOUT_MS,
 * SWITCHBOARD_PRESENCE_TTL_MS, SWITCHBOARD_PUSH_DELAY_MS, SWITCHBOARD_PASSIVATE_AFTER_MS), metrics, log,
 * `settle` (the ingress may forget a message) and `onRouted` (publish `switchboard.events.routed`).
 */
export type RouterDeps = DirectoryDeps;

/** How long `answer` waits for a user actor before answering `unavailable`. */
export const DEFAULT_QUERY_TIMEOUT_MS = 2000;

/**
 * The routing core behind the owner subjects, bus-agnostic: runtime/node.ts subscribes it to the partitions
 * this node owns and feeds it `OwnerMessage`s and `OwnerQuery`s. Each user is one actor (UserDirectory).
 */
export class Router {
  private readonly directory: UserDirectory;

  constructor(private readonly deps: RouterDeps, private readonly queryTimeoutMs = DEFAULT_QUERY_TIMEOUT_MS) {
    this.directory = new UserDirectory(deps);
  }

  /** Gateway -> owner traffic and `route` for each accepted message (PROTOCOL.md sections 2-4). Never throws. */
  handle(msg: OwnerMessage): void {
    this.directory.tell(msg.user, msg);
  }

  /** `GET /v1/users/{user}` and `GET /v1/users/{user}/decisions` (section 3), answered by the user's actor. */
  answer(q: OwnerQuery): Promise<OwnerReply> {
    return this.directory.ask(q.user, q, this.queryTimeoutMs);
  }

  /** Waits until every mailbox is empty (or `timeoutMs` passed): the graceful part of SIGTERM. */
  drain(timeoutMs: number): Promise<void> {
    return this.directory.drain(timeoutMs);
  }

  /** Stops every actor and timer; messages after this are dropped (unsettled ones are replayed by the ingress). */
  stop(): void {
    this.directory.stop();
  }

  /** Forgets the users matching `match` (a partition this node no longer owns); returns how many. */
  evict(match: (user: string) => boolean): number {
    return this.directory.evict(match);
  }

  /** Spawned actors and users held in memory (also exported as gauges). */
  get stats(): { liveActors: number; residentUsers: number } {
    return { liveActors: this.directory.liveActors, residentUsers: this.directory.residentUsers };
  }

  /** Passivates idle actors now instead of waiting for the periodic sweep. */
  sweep(): void {
    this.directory.sweep();
  }
}
