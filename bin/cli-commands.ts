import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { ChatServerClient, SwitchboardApiError } from '../chat-server/client.js';
import { MOBILE_OS, isId, type MobileOs } from '../protocol/index.js';
import { UsageError, nodeUrl, readNodeSecret } from './cli-secrets.js';

/** `--ttl`: whole seconds, or a number with s, m, h or d; 1 s to 365 days. */
export function parseTtl(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'] : NaN;
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > 365 * 86400) {
    throw new UsageError(`--ttl must be seconds or a number with s, m, h or d (1s-365d), not "${text}"`);
  }
  return seconds;
}

/**
 * `switchboard token …`: prints an HS256 client token with the claims of PROTOCOL.md section 2; `--bot` adds
 * `"bot": true` (PC tokens only). Throws `UsageError` (exit 2) naming a missing flag ("--device is required") or
 * the rule a value breaks.
 */
export async function tokenCommand(args: string[], env: NodeJS.ProcessEnv, now = Date.now()): Promise<string> {
  const { values } = parse(args, {
    user: { type: 'string' }, device: { type: 'string' }, kind: { type: 'string' }, os: { type: 'string' }, ttl: { type: 'string' }, bot: { type: 'boolean' },
  });
  const { user, device, kind, os } = values as Record<string, string | undefined>;
  const bot = values.bot === true;
  for (const [flag, value] of [['--user', user], ['--device', device], ['--kind', kind]] as const) {
    if (value === undefined) throw new UsageError(`${flag} is required`);
  }
  if (!isId(user)) throw new UsageError('--user must be 1-128 printable characters');
  if (!isId(device)) throw new UsageError('--device must be 1-128 printable characters');
  if (kind !== 'pc' && kind !== 'mobile') throw new UsageError('--kind must be pc or mobile');
  if (kind === 'mobile' && os === undefined) throw new UsageError(`--os is required for --kind mobile (${MOBILE_OS.join(', ')})`);
  if (kind === 'mobile' && !(MOBILE_OS as readonly string[]).includes(os ?? '')) throw new UsageError(`--os must be one of ${MOBILE_OS.join(', ')} for a mobile`);
  if (kind === 'pc' && os !== undefined) throw new UsageError('--os is only for --kind mobile');
  // The `bot` claim is a PC notion (gateway/auth.ts refuses it on a mobile token; README "Bots and bridges").
  if (bot && kind !== 'pc') throw new UsageError('--bot is only for --kind pc');
  const ttl = parseTtl((values.ttl as string | undefined) ?? '1h');
  const secret = await readNodeSecret(env, 'SWITCHBOARD_JWT_SECRET');
  const iat = Math.floor(now / 1000);
  return new SignJWT({ sub: user, dev: device, kind, ...(kind === 'mobile' ? { os: os as MobileOs } : {}), ...(bot ? { bot: true } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .sign(new TextEncoder().encode(secret));
}

/** `switchboard send …`: one message through `POST /v1/messages`, retried with the same id; prints the answer. */
export async function sendCommand(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { values } = parse(args, {
    to: { type: 'string' }, text: { type: 'string' }, title: { type: 'string' }, from: { type: 'string' }, id: { type: 'string' }, url: { type: 'string' },
  });
  const v = values as Record<string, string | undefined>;
  if (!isId(v.to)) throw new UsageError('--to must be a user id (1-128 printable characters)');
  if (v.text === undefined && v.title === undefined) throw new UsageError('--text or --title is required');
  const apiKey = await readNodeSecret(env, 'SWITCHBOARD_API_KEY');
  let client: ChatServerClient;
  try {
    client = new ChatServerClient({ http: { url: v.url ?? nodeUrl(env), apiKey }, retry: { attempts: 3 } });
  } catch (e) {
    // Say where the URL came from: the flag, or the environment (SWITCHBOARD_URL, else SWITCHBOARD_HOST and _PORT).
    throw new UsageError(`${v.url !== undefined ? '--url' : env.SWITCHBOARD_URL !== undefined ? 'SWITCHBOARD_URL' : 'SWITCHBOARD_HOST/SWITCHBOARD_PORT'}: ${(e as Error).message}`);
  }
  try {
    const result = await client.send({
      id: v.id ?? randomUUID(), to: v.to,
      ...(v.text !== undefined ? { text: v.text } : {}), ...(v.title !== undefined ? { title: v.title } : {}), ...(v.from !== undefined ? { from: v.from } : {}),
    });
    return JSON.stringify(result);
  } catch (e) {
    if (e instanceof SwitchboardApiError) throw new UsageError(`send failed: ${e.code}: ${e.message}`, 1);
    throw e;
  }
}

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean' }>) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
