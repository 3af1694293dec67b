import type { NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import type { Bus } from '../bus/bus.js';
import type { Subjects } from '../bus/subjects.js';
import type { Logger } from '../base/logger.js';
import type { TokenRemovedEvent } from '../protocol/index.js';
import type { TokenRemovalListener } from '../store/types.js';
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

/** The gateway's slice of the configuration for device registrations: configured app names, allowed push hosts. */
export function registrationRules(config: Config, senders: SenderConfig): RegistrationRules {
  const hosts = config.webpush.allowedHosts ?? DEFAULT_WEBPUSH_HOSTS;
  return { apps: new Set(Object.keys(senders.apps)), isAllowedPushEndpoint: (url) => isAllowedPushEndpoint(url, hosts) };
}

