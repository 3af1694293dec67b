import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { bearerMatches, readClaims, verifyClientToken } from '../gateway/auth.js';

const SECRET = 'a-test-secret-of-enough-length';
const key = new TextEncoder().encode(SECRET);
const NOW = 1_700_000_000_000;

function sign(claims: Record<string, unknown>, opts: { exp?: number | null; alg?: string; secret?: string } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? 'HS256' });
  if (opts.exp !== null) jwt.setExpirationTime(opts.exp ?? Math.floor(NOW / 1000) + 60);
  return jwt.sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

describe('readClaims (section 2 hello claims)', () => {
  it.each([
    [{ sub: 'u1', dev: 'd1', kind: 'pc' }, { user: 'u1', device: 'd1', kind: 'pc' }],
    [{ sub: 'u1', dev: 'd1', kind: 'pc', os: 'ios' }, { user: 'u1', device: 'd1', kind: 'pc' }],
    [{ sub: 'alice@example.com', dev: 'phone:1', kind: 'mobile', os: 'ios' }, { user: 'alice@example.com', device: 'phone:1', kind: 'mobile', os: 'ios' }],
    [{ sub: 'u', dev: 'd', kind: 'mobile', os: 'harmony' }, { user: 'u', device: 'd', kind: 'mobile', os: 'harmony' }],
    [{ sub: 'x'.repeat(128), dev: 'd', kind: 'pc' }, { user: 'x'.repeat(128), device: 'd', kind: 'pc' }],
    // Issue 10 part 5: a bot or bridge PC session.
    [{ sub: 'u', dev: 'matrix-bridge', kind: 'pc', bot: true }, { user: 'u', device: 'matrix-bridge', kind: 'pc', bot: true }],
    [{ sub: 'u', dev: 'd', kind: 'pc', bot: false }, { user: 'u', device: 'd', kind: 'pc' }],
  ])('accepts %j', (claims, identity) => {
    expect(readClaims(claims)).toEqual({ ok: true, identity });
  });

  it.each([
    [{ dev: 'd', kind: 'pc' }, /sub/],
    [{ sub: '', dev: 'd', kind: 'pc' }, /sub/],
    [{ sub: 'x'.repeat(129), dev: 'd', kind: 'pc' }, /sub/],
    [{ sub: 'a\nb', dev: 'd', kind: 'pc' }, /sub/],
    [{ sub: 42, dev: 'd', kind: 'pc' }, /sub/],
    [{ sub: 'u', kind: 'pc' }, /dev/],
    [{ sub: 'u', dev: 'd' }, /kind/],
    [{ sub: 'u', dev: 'd', kind: 'tablet' }, /kind/],
    [{ sub: 'u', dev: 'd', kind: 'mobile' }, /os/],
    [{ sub: 'u', dev: 'd', kind: 'mobile', os: 'symbian' }, /os/],
    [{ sub: 'u', dev: 'd', kind: 'pc', bot: 'yes' }, /bot must be true or false/],
    [{ sub: 'u', dev: 'd', kind: 'mobile', os: 'ios', bot: true }, /bot is only allowed for kind "pc"/],
  ])('refuses %j', (claims, reason) => {
    const check = readClaims(claims as Record<string, unknown>);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toMatch(reason);
  });
});

describe('verifyClientToken', () => {
  const claims = { sub: 'u1', dev: 'd1', kind: 'pc' };

  it('accepts a valid HS256 token', async () => {
    expect(await verifyClientToken(await sign(claims), key, NOW)).toEqual({ ok: true, identity: { user: 'u1', device: 'd1', kind: 'pc' } });
  });

  it('refuses an expired token, judged by the injected clock', async () => {
    const token = await sign(claims, { exp: Math.floor(NOW / 1000) - 1 });
    expect(await verifyClientToken(token, key, NOW)).toEqual({ ok: false, reason: 'expired' });
    expect((await verifyClientToken(token, key, NOW - 10_000)).ok).toBe(true);
  });

  it('refuses a token without exp', async () => {
    expect(await verifyClientToken(await sign(claims, { exp: null }), key, NOW)).toEqual({ ok: false, reason: 'missing exp' });
  });

  it('says why it refuses a forged signature, another algorithm, alg none and garbage (section 2 close reasons)', async () => {
    const forged = await sign(claims, { secret: 'another-secret-of-enough-length' });
    const hs512 = await sign(claims, { alg: 'HS512' });
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, exp: NOW / 1000 + 60 })).toString('base64url')}.`;
    const cases: [string, string][] = [
      [forged, 'bad signature'],
      [hs512, 'wrong algorithm'],
      [none, 'wrong algorithm'],
      ['not-a-jwt', 'malformed token (not a compact JWS)'],
      ['', 'token missing'],
    ];
    for (const [token, reason] of cases) {
      const check = await verifyClientToken(token, key, NOW);
      expect(check).toEqual({ ok: false, reason });
      if (!check.ok) expect(check.reason).not.toContain(SECRET);
    }
  });

  it('refuses a well-signed token with bad claims', async () => {
    const check = await verifyClientToken(await sign({ sub: 'u', dev: 'd', kind: 'mobile' }), key, NOW);
    expect(check.ok).toBe(false);
  });
});

describe('bearerMatches', () => {
  it('accepts exactly the key', () => {
    expect(bearerMatches('Bearer k3y-value', 'k3y-value')).toBe(true);
    expect(bearerMatches('bearer k3y-value', 'k3y-value')).toBe(true);
  });

  it.each([undefined, '', 'k3y-value', 'Bearer', 'Bearer k3y-valu', 'Bearer k3y-value2', 'Basic k3y-value', 'Bearer k3y value'])('refuses %j', (header) => {
    expect(bearerMatches(header, 'k3y-value')).toBe(false);
  });
});
