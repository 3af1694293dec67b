/**
 * What a failed file operation says in a one-line error without repeating the path or quoting the file: its errno
 * code (`ENOENT`, `EACCES`, `EISDIR`, …), else the error's message. For the start-up and credential errors that name
 * the file themselves (secrets never appear in logs).
 */
export function fileErrorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err instanceof Error ? err.message : String(err));
}
