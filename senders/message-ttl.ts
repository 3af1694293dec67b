import type { ChatMessage } from '../protocol/index.js';

/*
 * A message's `ttlSeconds` counts from its acceptance (PROTOCOL.md section 4: held messages run out `ttlSeconds` after
 * they were accepted). A push sent later (held first, a push delay, retries) carries only what is left, so no vendor
 * keeps the message past acceptance + ttlSeconds.
 */

/** Epoch second at which the message's TTL ends (rounded up), or undefined without a TTL. `ttlSeconds: 0` ends at acceptance. */
export function ttlEndSeconds(m: Pick<ChatMessage, 'acceptedAt' | 'ttlSeconds'>): number | undefined {
  return m.ttlSeconds === undefined ? undefined : Math.ceil((m.acceptedAt + m.ttlSeconds * 1000) / 1000);
}

/**
 * Seconds of the message's TTL left at `now` (epoch ms), rounded up, for the vendors' relative TTLs (FCM and Push Kit
 * `ttl`, Web Push `TTL`); undefined without a TTL. `ttlSeconds: 0` ("now or never") and a TTL that has run out give 0.
 */
export function ttlLeftSeconds(m: Pick<ChatMessage, 'acceptedAt' | 'ttlSeconds'>, now: number): number | undefined {
  if (m.ttlSeconds === undefined) return undefined;
  if (m.ttlSeconds === 0) return 0;
  return Math.max(0, Math.ceil((m.acceptedAt + m.ttlSeconds * 1000 - now) / 1000));
}

/** The message with `ttlSeconds` replaced by what is left of it at `now` (for bodies that take the TTL from the message). */
export function withTtlLeft<M extends Pick<ChatMessage, 'acceptedAt' | 'ttlSeconds'>>(m: M, now: number): M {
  const left = ttlLeftSeconds(m, now);
  return left === undefined || left === m.ttlSeconds ? m : { ...m, ttlSeconds: left };
}
