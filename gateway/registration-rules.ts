import { SwitchboardError, webPushEndpoint, type DeviceRegistration } from '../protocol/index.js';

/**
 * What the gateway checks of a device registration beyond its shape (PROTOCOL.md section 3, PUT devices row;
 * the `register` frame): given by the composition root, so the gateway needs neither the sender config nor the
 * senders themselves.
 */
export interface RegistrationRules {
  /** Names of the configured apps (runtime/sender-config.ts), `default` included. */
  readonly apps: ReadonlySet<string>;
  /** Section 5: the endpoint of a web subscription is on an allowed push service host. */
  isAllowedPushEndpoint(endpoint: URL): boolean;
}

/**
 * Throws `invalid_field` for an `app` that is not configured, or a web subscription whose endpoint is not on an
 * allowed push service host. The token's own shape was checked when it was decoded (protocol/push-token.ts).
 */
export function checkRegistration(reg: DeviceRegistration, rules: RegistrationRules): void {
  if (reg.app !== undefined && !rules.apps.has(reg.app)) {
    throw new SwitchboardError('invalid_field', `app must be a configured app (${[...rules.apps].slice(0, 20).map((a) => `"${a}"`).join(', ')})`);
  }
  if (reg.os === 'web' && !rules.isAllowedPushEndpoint(webPushEndpoint(reg.token))) {
    throw new SwitchboardError('invalid_field', 'token must be a PushSubscription whose endpoint is on an allowed push service host (section 5)');
  }
}
