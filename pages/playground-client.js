// The playground's page client: a minimal browser client of the Switchboard WebSocket protocol (PROTOCOL.md
// section 2), kept in this one file so the project's client SDK can replace it. It sends hello, keeps the session
// alive with pings at the welcome's heartbeat, acks every message at once and ignores ids it has already seen.

export class PlaygroundClient extends EventTarget {
  /**
   * @param {{ url: string, token: () => Promise<string> }} opts  url of /v1/ws; token() mints a hello token.
   * Events: `state` (detail: 'connecting'|'open'|'closed', plus code/reason), `message` (detail: the message frame
   * and `ackedAt`, epoch ms), `frame` (every frame from the server).
   */
  constructor(opts) {
    super();
    this.opts = opts;
    this.ws = undefined;
    this.seen = new Set();
    this.heartbeat = undefined;
    this.state = 'closed';
  }

  async connect() {
    this.close();
    this.setState('connecting');
    const token = await this.opts.token();
    const ws = new WebSocket(this.opts.url);
    this.ws = ws;
    ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'hello', token })));
    ws.addEventListener('message', (e) => this.onFrame(JSON.parse(e.data)));
    ws.addEventListener('close', (e) => {
      if (this.ws !== ws) return;
      clearInterval(this.heartbeat);
      this.ws = undefined;
      this.setState('closed', { code: e.code, reason: e.reason });
    });
    return new Promise((resolve, reject) => {
      const onState = (e) => {
        if (e.detail.state === 'open') { this.removeEventListener('state', onState); resolve(); }
        if (e.detail.state === 'closed') { this.removeEventListener('state', onState); reject(new Error(`closed ${e.detail.code} ${e.detail.reason}`)); }
      };
      this.addEventListener('state', onState);
    });
  }

  /** Sends a frame; false when not connected. */
  send(frame) {
    if (this.ws?.readyState !== WebSocket.OPEN || this.state !== 'open') return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  presence(state, reason) {
    return this.send(reason ? { type: 'presence', state, reason } : { type: 'presence', state });
  }

  register(os, token) {
    return this.send({ type: 'register', os, token });
  }

  close() {
    const ws = this.ws;
    this.ws = undefined;
    clearInterval(this.heartbeat);
    if (ws) {
      ws.close(1000, 'bye');
      this.setState('closed', { code: 1000, reason: 'closed by the page' });
    }
  }

  onFrame(frame) {
    this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
    if (frame.type === 'welcome') {
      this.welcome = frame;
      this.heartbeat = setInterval(() => this.send({ type: 'ping' }), Math.max(1000, frame.heartbeatMs ?? 30000));
      this.setState('open');
    } else if (frame.type === 'message') {
      this.send({ type: 'ack', id: frame.id });
      if (this.seen.has(frame.id)) return;
      this.seen.add(frame.id);
      this.dispatchEvent(new CustomEvent('message', { detail: { ...frame, ackedAt: Date.now() } }));
    }
  }

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...extra } }));
  }
}
