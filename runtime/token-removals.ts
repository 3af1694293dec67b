import type { NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import type { Bus } from '../bus/bus.js';
import type { Subjects } from '../bus/subjects.js';
import type { Logger } from '../base/logger.js';
import type { TokenRemovedEvent } from '../protocol/index.js';
import type { TokenRemovalListener } from '../store/types.js';
import type { EventSource } from '../gateway/event-stream.js';
import type { RegistrationRules } from '../gateway/registration-rules.js';
import type { SenderConfig } from '../senders/vendor-config.js';
import { DEFAULT_WEBPUSH_HOSTS, isAllowedPushEndpoint } from '../senders/webpush-hosts.js';
import type { Config } from './config.js';

const packr = new Packr({ useRecords: false });

/**
 * What happens to every push token the registry removes (issue 9, PROTOCOL.md section 3): the owner of the user's
 * partition is told (`token_removed`, so an actor holding the token in memory drops it) and chat servers get
 * `switchboard.events.token_removed` `{"user","device","os","reason"}` through `publishEvent` (embedded: the
 * in-process bus; cluster: NATS). The token itself goes only to the owner, never to the event or the log.
 * A `replaced` token goes to chat servers only: the `device_put` that follows its put gives the owner the new
 * token in its place, and dropping the old one first would leave the device without a token in between.
 */
export function tokenRemovalListener(o: {
  bus: Bus;
  subjects: Subjects;
  log: Logger;
  publishEvent(e: TokenRemovedEvent): void;
}): TokenRemovalListener {
  return ({ user, device, os, token, reason }) => {
    try {
      if (reason !== 'replaced') o.bus.publish(o.subjects.owner(user), { type: 'token_removed', user, device, token });
      o.publishEvent({ user, device, os, reason });
      o.log.info({ user, device, os, reason }, 'push token removed');
    } catch (err) {
      o.log.warn({ err: String(err), user, device }, 'publishing a token removal failed');
    }
  };
}

/** The cluster's form of the section 3 event: MessagePack on NATS `<prefix>.events.token_removed`, like routed events. */
export function natsEventPublisher(nc: Pick<NatsConnection, 'publish'>, subjects: Subjects): (e: TokenRemovedEvent) => void {
  return (e) => nc.publish(subjects.tokenRemovedEvents, packr.pack(e));
}

/** The embedded bus's form of the section 3 event. */
export function busEventPublisher(bus: Bus, subjects: Subjects): (e: TokenRemovedEvent) => void {
  return (e) => bus.publish(subjects.tokenRemovedEvents, { type: 'token_removed_event', ...e });
}

/** The events `busEventPublisher` publishes, for `GET /v1/events` (gateway/event-stream.ts). */
export function busEventSource(bus: Bus, subjects: Subjects): EventSource {
  return {
    subscribe(onEvent) {
      const sub = bus.subscribe(subjects.tokenRemovedEvents, (m) => onEvent(m as TokenRemovedEvent));
      return () => sub.unsubscribe();
    },
  };
}

/** Every node's events `natsEventPublisher` publishes, for a gateway's `GET /v1/events`. */
export function natsEventSource(nc: Pick<NatsConnection, 'subscribe'>, subjects: Subjects, log: Logger): EventSource {
  return {
    subscribe(onEvent) {
      const sub = nc.subscribe(subjects.tokenRemovedEvents, {
        callback: (err, m) => {
          if (err) return;
          let event: unknown;
          try {
            event = packr.unpack(m.data);
          } catch (e) {
            event = e;
          }
          // Anyone may publish on the subject: only the section 3 shape goes on to the streams.
          if (isTokenRemovedEvent(event)) onEvent(event);
          else log.warn('a message on the token_removed events subject is not one: skipped');
        },
      });
      return () => sub.unsubscribe();
    },
  };
}

function isTokenRemovedEvent(x: unknown): x is TokenRemovedEvent {
  const e = x as Partial<Record<keyof TokenRemovedEvent, unknown>> | null;
  return typeof e === 'object' && e !== null && typeof e.user === 'string' && typeof e.device === 'string' && typeof e.os === 'string' && typeof e.reason === 'string';
}

/** The gateway's slice of the configuration for device registrations: configured app names, allowed push hosts. */
export function registrationRules(config: Config, senders: SenderConfig): RegistrationRules {
  const hosts = config.webpush.allowedHosts ?? DEFAULT_WEBPUSH_HOSTS;
  return { apps: new Set(Object.keys(senders.apps)), isAllowedPushEndpoint: (url) => isAllowedPushEndpoint(url, hosts) };
}

