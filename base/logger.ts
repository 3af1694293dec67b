import { pino, type Logger } from 'pino';

/**
 * pino with secrets redacted: device tokens, JWTs, API keys and vendor keys never reach a log line
 * (brief: "Secrets never appear in logs"). `test/logger.test.ts` checks each path.
 */
export const REDACT_PATHS = [
  'token', '*.token', '*.*.token', 'jwt', '*.jwt', 'apiKey', '*.apiKey', 'jwtSecret', '*.jwtSecret',
  'authorization', '*.authorization', '*.headers.authorization', 'req.headers.authorization',
  'key', '*.key', 'privateKey', '*.privateKey', 'private_key', '*.private_key', 'secret', '*.secret',
];

export type { Logger };

/**
 * A pino logger at `level` writing JSON lines to `destination` (default stdout). `bindings` go on every line next to
 * `pid`: a node passes `{ node: SWITCHBOARD_NODE_ID }`, so a cluster's merged logs tell which node wrote a line.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream, bindings: Record<string, string> = {}): Logger {
  return pino(
    { level, base: { pid: process.pid, ...bindings }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    destination as pino.DestinationStream | undefined,
  );
}
