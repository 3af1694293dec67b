import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import https from 'node:https';
import { ProviderToken } from '../senders/apns-token.js';
import { readServiceAccount, serviceAccountAssertion } from '../senders/oauth-service-account.js';
import type { StandIns } from './senders-servers.js';

/**
 * The ceilings of `bench/senders.ts`: the least a client can do per push, in the measured process, against the
 * same stand-in. No pool, no worker, no batching, no outcome mapping: a request built and sent, the status read.
 * Each `send(i)` resolves true on a 2xx.
 */

export interface RawClient {
  send(i: number): Promise<boolean>;
  close(): Promise<void>;
}

/** node:http2, one connection (the stand-in advertises 1000 streams, like Apple), ES256 token signed once. */
export async function rawApnsClient(s: StandIns['apns'], tokens: string[]): Promise<RawClient> {
  const jwt = ProviderToken.load(s.keyFile, s.keyId, s.teamId, Date.now).current();
  const session = http2.connect(s.origin, { settings: { enablePush: false } });
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('error', reject);
  });
  return {
    send(i) {
      const body = JSON.stringify({ aps: { alert: { title: 'Alice', body: `message ${i}` } }, messageId: `raw-${i}`, sender: 'alice' });
      return new Promise((resolve) => {
        const stream = session.request({
          ':method': 'POST', ':path': `/3/device/${tokens[i % tokens.length]}`, authorization: `bearer ${jwt}`,
          'apns-topic': s.topic, 'apns-push-type': 'alert', 'apns-priority': '10', 'apns-id': randomUUID(),
        });
        let status = 0;
        stream.on('response', (h) => { status = Number(h[':status']); });
        stream.on('data', () => undefined);
        stream.on('close', () => resolve(status === 200));
        stream.on('error', () => resolve(false));
        stream.end(body);
      });
    },
    close: () => new Promise((resolve) => session.close(() => resolve())),
  };
}

/** node:https keep-alive with the FCM sender's socket count (HTTP/1.1 like the stand-in), one OAuth exchange up front. */
export async function rawFcmClient(s: StandIns['fcm'], tokens: string[], sockets: number): Promise<RawClient> {
  const loaded = await readServiceAccount(s.serviceAccountFile);
  if (!loaded.ok) throw new Error(loaded.reason);
  const agent = new https.Agent({ keepAlive: true, maxSockets: sockets });
  const post = (path: string, body: string, headers: Record<string, string>) => new Promise<{ status: number; body: string }>((resolve) => {
    const req = https.request(`${s.origin}${path}`, { method: 'POST', agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end(body);
  });
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: serviceAccountAssertion(loaded.account, Date.now()) });
  const exchange = await post('/token', form.toString(), { 'content-type': 'application/x-www-form-urlencoded' });
  const accessToken = (JSON.parse(exchange.body) as { access_token?: string }).access_token;
  if (!accessToken) throw new Error(`fcm token exchange failed: ${exchange.status} ${exchange.body}`);
  const path = `/v1/projects/${s.projectId}/messages:send`;
  const headers = { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json; charset=utf-8' };
  return {
    async send(i) {
      const body = JSON.stringify({ message: { token: tokens[i % tokens.length], notification: { title: 'Alice', body: `message ${i}` }, data: { messageId: `raw-${i}`, sender: 'alice' }, android: { priority: 'high' } } });
      return (await post(path, body, headers)).status === 200;
    },
    close: async () => agent.destroy(),
  };
}
