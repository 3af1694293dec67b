/**
 * `JSON.parse` for files that hold secrets (service accounts, apps files): the failure says where, never what. Node
 * 20's own messages quote the text (`Unexpected token 'S', "{"a": SECRET…" is not valid JSON`), and such a message
 * would carry key material into a log line or a push's failure reason.
 */
export function parseJsonText(text: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : '');
    return { ok: false, problem: at ? `not valid JSON (at position ${at[1]})` : 'not valid JSON' };
  }
}
