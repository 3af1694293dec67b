/**
 * A start-up failure whose cause is known and named (issue 8 part 5): `bin/switchboard.ts` prints the message as one
 * line and exits with `exitCode` (2: refused, e.g. the data dir is held by another node; 1: could not start).
 */
export class StartError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2 = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartError';
  }
}
