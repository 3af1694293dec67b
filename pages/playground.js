// Switchboard playground: one user with a PC and a phone, both real clients of this node built on the project's
// client SDK (served from the package build under /pages/sdk/), a send box that plays the chat server, and the node's
// decisions explained in words. Tokens and sends come from the node's loopback-only /playground/api/ calls: this
// page never holds the API key or the JWT secret.
import { SwitchboardClient } from '/pages/sdk/client.js';
import { PcPresenceReporter } from '/pages/sdk/pc-presence.js';
import { browserPresenceAdapter } from '/pages/sdk/adapters/browser.js';
import { MobileSession } from '/pages/sdk/mobile.js';
import { VENDOR_NAME, REASON_WORDS, clock, explain } from '/pages/playground-trail.js';

const $ = (id) => document.getElementById(id);
const USER = new URLSearchParams(location.search).get('user') ?? 'playground';
const PC_DEVICE = 'playground-pc';
const PHONE_DEVICE = 'playground-phone';
const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;

let vendors = {};
const sent = new Map(); // message id -> { text, at }
const received = new Map(); // `${device}:${id}` -> epoch ms the page acked it

async function api(name, body) {
  const init = body === undefined ? { cache: 'no-store' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
  const res = await fetch(`/playground/api/${name}`, init);
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
  return json;
}

// ---- PC: the SDK's presence reporter (real input detection), locks by hand, the threshold slider ----
const pc = {
  client: new SwitchboardClient({ url: WS_URL, token: () => api('token', { user: USER, device: PC_DEVICE, kind: 'pc' }).then((r) => r.token) }),
  screenLocked: false,
  lockUpdate: undefined, // the manual screen-lock adapter's update function while it runs
  idleAfterMs: undefined, // the slider's threshold once moved; else the welcome's idleAfterMs
  welcomeListeners: new Set(),
  history: [], // { at, state, reason }: what the reporter sent
};

// The reporter's sink: the client, plus the page's own record, and the slider's threshold in place of the welcome's.
const pcSink = {
  setPresence(p) {
    pc.client.setPresence(p);
    pc.history.push({ at: Date.now(), ...p });
    renderPc();
  },
  on(event, listener) {
    if (event !== 'welcome') return pc.client.on(event, listener);
    const relay = (w) => listener({ ...w, idleAfterMs: pc.idleAfterMs ?? w.idleAfterMs });
    pc.welcomeListeners.add(relay);
    const off = pc.client.on('welcome', relay);
    return () => { pc.welcomeListeners.delete(relay); off(); };
  },
};
// "Lock the screen" by hand: an adapter like the platform ones, whose screen state is the button's.
const manualScreenLock = {
  signal: 'page',
  start(update) { pc.lockUpdate = update; update({ screenLocked: pc.screenLocked }); },
  stop() { pc.lockUpdate = undefined; },
};
// Typing in the chat-server box or using the phone pane is another party's input, not the PC user's: it must not make
// an idle PC active (else a message sent from the box could never find the PC idle). The page signal hears the rest.
const otherParties = [$('send-form').closest('section'), $('phone-pane')];
const pcListeners = new Map(); // the adapter's listener -> the same, deaf to the other parties' input
const pcInput = {
  addEventListener(type, listener, options) {
    if (!pcListeners.has(listener)) pcListeners.set(listener, (e) => { if (!otherParties.some((el) => el.contains(e.target))) listener(e); });
    window.addEventListener(type, pcListeners.get(listener), options);
  },
  removeEventListener(type, listener) {
    if (pcListeners.has(listener)) window.removeEventListener(type, pcListeners.get(listener));
  },
};
// The Idle Detection API where granted (system-wide: every input counts), else input events in this page.
const input = browserPresenceAdapter({ window: pcInput });
pc.reporter = new PcPresenceReporter(pcSink, [input, manualScreenLock], { tickMs: 250 });

function renderPc() {
  const p = pc.history[pc.history.length - 1];
  const el = $('pc-presence');
  if (!p) return;
  el.textContent = p.state === 'active' ? 'active' : `inactive (${REASON_WORDS[p.reason]}) since ${clock(p.at)}`;
  el.className = `presence ${p.state}`;
  $('pc-lock-screen').setAttribute('aria-pressed', String(pc.screenLocked));
  $('pc-lock-client').setAttribute('aria-pressed', String(pc.clientLocked === true));
  $('pc-signal').textContent = input.signal === 'system' ? 'system-wide (Idle Detection API)' : 'input in this page only (not in the chat-server box or the phone)';
}

function setScreenLock(locked) {
  pc.screenLocked = locked;
  pc.lockUpdate?.({ screenLocked: locked });
}
function setClientLock(locked) {
  pc.clientLocked = locked;
  pc.reporter.setClientLocked(locked);
}
$('pc-lock-screen').addEventListener('click', () => { setScreenLock(true); renderPc(); });
$('pc-lock-client').addEventListener('click', () => { setClientLock(true); renderPc(); });
$('pc-unlock').addEventListener('click', () => { setScreenLock(false); setClientLock(false); renderPc(); });
$('pc-idle').addEventListener('input', (e) => {
  pc.idleAfterMs = Number(e.target.value) * 1000;
  $('pc-idle-value').textContent = `${e.target.value} s`;
  const w = { ...(pc.client.welcome ?? {}), idleAfterMs: pc.idleAfterMs };
  for (const l of pc.welcomeListeners) l(w);
});
pc.client.on('state', (s) => { $('pc-connection').textContent = s === 'open' ? 'connected' : s; });
pc.client.on('welcome', (w) => {
  if (pc.idleAfterMs === undefined && w.idleAfterMs) {
    $('pc-idle').value = String(Math.round(w.idleAfterMs / 1000));
    $('pc-idle-value').textContent = `${$('pc-idle').value} s`;
  }
});
pc.client.on('message', (m) => showReceived('pc-inbox', PC_DEVICE, m));

// ---- Phone: the SDK's mobile session; foreground / background by hand, offline = client stopped ----
const phoneOs = () => $('phone-os').value;
let phone;

function standInToken(os) {
  const hex = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, '0')).join('');
  return os === 'ios' ? hex : `playground-stand-in-${hex.slice(0, 24)}`;
}

/** A phone of the chosen OS: client, app lifecycle driven by the buttons, and a stand-in push token. */
function buildPhone() {
  const os = phoneOs();
  const client = new SwitchboardClient({ url: WS_URL, token: () => api('token', { user: USER, device: PHONE_DEVICE, kind: 'mobile', os }).then((r) => r.token) });
  const listeners = new Set();
  const p = { os, client, appState: 'foreground', registered: false, started: false, history: phone?.history ?? [] };
  const lifecycle = { current: () => p.appState, onChange(l) { listeners.add(l); return () => listeners.delete(l); } };
  const token = standInToken(os);
  p.session = new MobileSession(client, lifecycle, { os, getToken: async () => token, onTokenRefresh: () => () => {} });
  p.setAppState = (s) => { p.appState = s; for (const l of listeners) l(s); };
  client.on('state', (s) => {
    $('phone-connection').textContent = s === 'open' ? (p.registered ? 'connected, push token stored' : 'connected')
      : s === 'stopped' && p.registered ? 'offline (push token stored)' : s;
  });
  client.on('registered', () => {
    p.registered = true;
    $('phone-connection').textContent = 'connected, push token stored';
  });
  client.on('message', (m) => showReceived('phone-inbox', PHONE_DEVICE, m));
  return p;
}

async function setPhone(mode) {
  phone.mode = mode;
  phone.history.push({ at: Date.now(), mode });
  for (const m of ['foreground', 'background', 'offline']) $(`phone-${m}`).setAttribute('aria-pressed', String(m === mode));
  const el = $('phone-presence');
  el.textContent = mode === 'foreground' ? 'in the foreground' : mode === 'background' ? 'in the background' : 'offline';
  el.className = `presence ${mode}`;
  if (mode === 'offline') return phone.client.stop();
  phone.setAppState(mode);
  if (!phone.started) {
    phone.started = true;
    await phone.session.start();
  }
  if (phone.client.state === 'idle' || phone.client.state === 'stopped') phone.client.start();
}

for (const m of ['foreground', 'background', 'offline']) $(`phone-${m}`).addEventListener('click', () => void setPhone(m));
$('phone-os').addEventListener('change', () => {
  const mode = phone.mode;
  phone.session.close();
  phone.client.stop();
  phone = buildPhone();
  void setPhone(mode === 'offline' ? 'foreground' : mode);
});

function showReceived(list, device, m) {
  const at = Date.now(); // the SDK acks on receipt
  received.set(`${device}:${m.id}`, at);
  const li = document.createElement('li');
  li.textContent = `${clock(at)} ${m.text ?? ''}`;
  $(list).prepend(li);
}

const trayShown = new Set();
/** A push in the stand-in tray as the vendor would show it: who it is from, the text; marked when only a stand-in. */
function showInTray(id, entry) {
  if (trayShown.has(id)) return;
  trayShown.add(id);
  const li = document.createElement('li');
  const head = document.createElement('strong');
  const name = VENDOR_NAME[entry.vendor] ?? entry.vendor;
  head.textContent = entry.configured ? `${name} push` : `${name} push (stand-in: ${name} not configured on this node)`;
  const from = document.createElement('span');
  from.className = 'tray-from';
  from.textContent = sent.get(id)?.title ?? 'playground';
  const body = document.createElement('span');
  body.className = 'tray-body';
  body.textContent = sent.get(id)?.text ?? id;
  li.append(head, from, body);
  $('phone-tray').prepend(li);
}

// ---- Chat server: the send box ----
$('send-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = $('message-text').value.trim();
  if (!text) return;
  try {
    const r = await api('send', { user: USER, text });
    sent.set(r.id, { text, at: r.acceptedAt });
    $('send-status').textContent = `Sent "${text}" (${r.status}).`;
    $('message-text').value = '';
    void poll();
  } catch (err) {
    $('send-status').textContent = `Not sent: ${err.message}`;
  }
});

// ---- Decision trail ----
const trailItems = new Map();

function latestBefore(history, at, test) {
  let found;
  for (const h of history) if (h.at <= at + 50 && test(h)) found = h;
  return found;
}

/** What the trail needs to know of the panes (playground-trail.js `TrailContext`). */
const trailContext = () => ({
  vendors,
  phoneOs: phone?.os ?? phoneOs(),
  phoneRegistered: phone?.registered === true,
  phoneModeAt: (at) => latestBefore(phone?.history ?? [], at, () => true)?.mode,
  pcSince: (at, reason) => latestBefore(pc.history, at, (h) => h.reason === reason)?.at,
  ackedAt: (device, id) => received.get(`${device}:${id}`),
});

/** One decision in words, its push (real or stand-in) shown in the tray. */
function explainAndShow(d) {
  const { words, tray } = explain(d, trailContext());
  if (tray) showInTray(d.id, tray);
  return words;
}

function renderDecisions(decisions) {
  // Newest first from the node; a message may have several decisions (fallbacks).
  const byId = new Map();
  for (const d of [...decisions].reverse()) {
    if (!byId.has(d.id)) byId.set(d.id, []);
    byId.get(d.id).push(d);
  }
  for (const [id, ds] of byId) {
    let li = trailItems.get(id);
    if (!li) {
      li = document.createElement('li');
      li.dataset.id = id;
      trailItems.set(id, li);
      $('trail').prepend(li);
    }
    const words = ds.map(explainAndShow).join(' ⟶ then ');
    const text = `${clock(ds[0].at)} “${sent.get(id)?.text ?? id}”: ${words}`;
    if (li.textContent !== text) li.textContent = text;
  }
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    renderDecisions((await api(`decisions?user=${encodeURIComponent(USER)}`)).decisions);
  } catch {
    // The user's actor may not exist yet; the next poll tries again.
  } finally {
    polling = false;
  }
}

async function start() {
  $('user-name').textContent = USER;
  try {
    vendors = (await api('info')).vendors;
  } catch (err) {
    $('send-status').textContent = `The playground API refused: ${err.message}`;
    return;
  }
  pc.client.start();
  await pc.reporter.start();
  renderPc();
  phone = buildPhone();
  await setPhone('foreground');
  setInterval(poll, 500);
  document.body.dataset.ready = 'true';
}
void start();
