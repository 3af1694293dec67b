/*
 * The vendor payloads and their 4096-byte fitting (PROTOCOL.md section 5) live on the wire floor
 * (protocol/push-payload.ts), so the edge can ask `payloadOverflow` / `payloadFits` before accepting a message (413
 * payload_too_large, section 3) and the senders build exactly what was measured.
 */
export * from '../protocol/push-payload.js';
