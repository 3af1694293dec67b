/** The slice of a pino Logger that membership and leases use; pass `runtime/logger.ts`'s logger or nothing. */
export interface ClusterLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export const noLog: ClusterLog = { debug() {}, info() {}, warn() {} };
