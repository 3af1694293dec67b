// Switchboard playground: one user with a PC and a phone, both real WebSocket clients of this node, a send box that
// plays the chat server, and the node's decisions explained in words. Tokens and sends come from the node's
// loopback-only /playground/api/ calls: this page never holds the API key or the JWT secret.
import { PlaygroundClient } from '/pages/playground-client.js';

const $ = (id) => document.getElementById(id);
const USER = new URLSearchParams(location.search).get('user') ?? 'playground';
const PC_DEVICE = 'playground-pc';
const PHONE_DEVICE = 'playground-phone';
const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
const VENDOR_OF = { ios: 'apns', android: 'fcm', harmony: 'hms', web: 'webpush' };
const VENDOR_NAME = { apns: 'APNs', fcm: 'FCM', hms: 'Huawei Push Kit', webpush: 'Web Push' };
const REASON_WORDS = { idle: 'idle', screen_locked: 'screen locked', client_locked: 'client locked' };

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

const clock = (t) => new Date(t).toTimeString().slice(0, 8);

// ---- PC: presence from real input, plus locks by hand ----
const pc = {
  client: new PlaygroundClient({ url: WS_URL, token: () => api('token', { user: USER, device: PC_DEVICE, kind: 'pc' }).then((r) => r.token) }),
  locked: undefined, // 'screen_locked' | 'client_locked'
  idle: false,
  lastInput: Date.now(),
  thresholdMs: 60_000,
  reported: '',
  history: [], // { at, state, reason }
};

function pcPresence() {
  if (pc.locked) return { state: 'inactive', reason: pc.locked };
  return pc.idle ? { state: 'inactive', reason: 'idle' } : { state: 'active' };
}

function reportPc(force = false) {
  const p = pcPresence();
  const key = `${p.state}:${p.reason ?? ''}`;
  if (key !== pc.reported) pc.history.push({ at: Date.now(), ...p });
  if (key !== pc.reported || force) {
    pc.reported = key;
    pc.client.presence(p.state, p.reason);
  }
  const since = pc.history[pc.history.length - 1];
  const el = $('pc-presence');
  el.textContent = p.state === 'active' ? 'active' : `inactive (${REASON_WORDS[p.reason]}) since ${clock(since.at)}`;
  el.className = `presence ${p.state}`;
  $('pc-lock-screen').setAttribute('aria-pressed', String(pc.locked === 'screen_locked'));
  $('pc-lock-client').setAttribute('aria-pressed', String(pc.locked === 'client_locked'));
}

for (const type of ['mousemove', 'mousedown', 'keydown', 'wheel', 'touchstart', 'pointerdown']) {
  document.addEventListener(type, () => {
    pc.lastInput = Date.now();
    if (pc.idle) {
      pc.idle = false;
      reportPc();
    }
  }, { passive: true, capture: true });
}
setInterval(() => {
  if (!pc.idle && Date.now() - pc.lastInput > pc.thresholdMs) {
    pc.idle = true;
    reportPc();
  }
}, 250);

$('pc-lock-screen').addEventListener('click', () => { pc.locked = 'screen_locked'; reportPc(); });
$('pc-lock-client').addEventListener('click', () => { pc.locked = 'client_locked'; reportPc(); });
$('pc-unlock').addEventListener('click', () => { pc.locked = undefined; pc.idle = false; pc.lastInput = Date.now(); reportPc(); });
$('pc-idle').addEventListener('input', (e) => {
  pc.thresholdMs = Number(e.target.value) * 1000;
  $('pc-idle-value').textContent = `${e.target.value} s`;
});

pc.client.addEventListener('state', (e) => {
  $('pc-connection').textContent = e.detail.state === 'open' ? 'connected' : e.detail.state;
  if (e.detail.state === 'open') {
    const idleAfter = pc.client.welcome?.idleAfterMs;
    if (idleAfter) {
      $('pc-idle').value = String(Math.round(idleAfter / 1000));
      $('pc-idle').dispatchEvent(new Event('input'));
    }
    reportPc(true);
  }
});
pc.client.addEventListener('message', (e) => showReceived('pc-inbox', PC_DEVICE, e.detail));

// ---- Phone: foreground / background / offline, a stand-in push token, the tray ----
const phone = {
  client: new PlaygroundClient({ url: WS_URL, token: () => api('token', { user: USER, device: PHONE_DEVICE, kind: 'mobile', os: phoneOs() }).then((r) => r.token) }),
  mode: 'offline',
  registered: false,
  history: [], // { at, mode }
};
const phoneOs = () => $('phone-os').value;

function standInToken(os) {
  const hex = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, '0')).join('');
  return os === 'ios' ? hex : `playground-stand-in-${hex.slice(0, 24)}`;
}

async function setPhone(mode) {
  phone.mode = mode;
  phone.history.push({ at: Date.now(), mode });
  for (const m of ['foreground', 'background', 'offline']) $(`phone-${m}`).setAttribute('aria-pressed', String(m === mode));
  const el = $('phone-presence');
  el.textContent = mode === 'foreground' ? 'in the foreground' : mode === 'background' ? 'in the background' : 'offline';
  el.className = `presence ${mode}`;
  if (mode === 'offline') return phone.client.close();
  if (phone.client.state !== 'open') {
    phone.registered = false;
    await phone.client.connect().catch((err) => { $('phone-connection').textContent = `failed: ${err.message}`; });
  }
  phone.client.presence(mode);
}

for (const m of ['foreground', 'background', 'offline']) $(`phone-${m}`).addEventListener('click', () => void setPhone(m));
$('phone-os').addEventListener('change', () => {
  phone.client.close();
  if (phone.mode !== 'offline') void setPhone(phone.mode);
});
phone.client.addEventListener('state', (e) => {
  if (e.detail.state === 'open') {
    phone.client.register(phoneOs(), standInToken(phoneOs()));
    $('phone-connection').textContent = 'connected';
  } else $('phone-connection').textContent = e.detail.state === 'closed' && phone.registered ? 'offline (push token stored)' : e.detail.state;
});
phone.client.addEventListener('frame', (e) => {
  if (e.detail.type === 'registered') {
    phone.registered = true;
    $('phone-connection').textContent = 'connected, push token stored';
  }
});
phone.client.addEventListener('message', (e) => showReceived('phone-inbox', PHONE_DEVICE, e.detail));

function showReceived(list, device, m) {
  received.set(`${device}:${m.id}`, m.ackedAt);
  const li = document.createElement('li');
  li.textContent = `${clock(m.ackedAt)} ${m.text ?? ''}`;
  $(list).prepend(li);
}

const trayShown = new Set();
function showInTray(id, vendor, configured) {
  if (trayShown.has(id)) return;
  trayShown.add(id);
  const li = document.createElement('li');
  const head = document.createElement('strong');
  head.textContent = `${VENDOR_NAME[vendor]} push${configured ? '' : ' (stand-in: not configured on this node)'}`;
  li.append(head, sent.get(id)?.text ?? id);
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

function phoneWords(at) {
  const h = latestBefore(phone.history, at, () => true);
  return h?.mode === 'background' ? 'phone in the background' : 'phone offline';
}

function outcomeWords(t, d) {
  const acked = received.get(`${t.device}:${d.id}`);
  switch (t.outcome) {
    case 'acked': return acked ? `acked in ${Math.max(0, acked - d.at)} ms` : 'acked';
    case 'ok': return 'accepted by the vendor';
    case 'ack_timeout': return 'not acked in time';
    case 'failed': return `not sent (${t.detail ?? 'failed'})`;
    case 'dead_token': return 'the vendor says the token is dead';
    case 'cancelled': return `cancelled (${t.detail ?? ''})`;
    default: return 'waiting for the outcome';
  }
}

/** One decision in words: "PC screen locked since 10:42:01 -> phone in foreground -> delivered directly, acked in 3 ms". */
function explain(d) {
  const parts = [];
  if (d.reason === 'pc_active') parts.push('PC active');
  else if (d.reason === 'ack_timeout') parts.push('no ack in time, falling back');
  else if (d.reason === 'no_pc') parts.push('no PC connected');
  else if (d.reason === 'stale') parts.push('PC silent too long (stale)');
  else {
    const since = latestBefore(pc.history, d.at, (h) => h.reason === d.reason);
    parts.push(`PC ${REASON_WORDS[d.reason] ?? d.reason}${since ? ` since ${clock(since.at)}` : ''}`);
  }
  if (d.route === 'pc_fallback') parts.push('no phone reachable');
  for (const t of d.targets) {
    if (t.via === 'pc') parts.push(`delivered to the PC, ${outcomeWords(t, d)}`);
    else if (t.via === 'mobile') parts.push('phone in foreground', `delivered directly, ${outcomeWords(t, d)}`);
    else {
      const note = vendors[t.via] ? '' : ' (not configured here: see the stand-in tray)';
      parts.push(phoneWords(d.at), `${VENDOR_NAME[t.via] ?? t.via} push${note}, ${outcomeWords(t, d)}`);
      showInTray(d.id, t.via, vendors[t.via]);
    }
  }
  if (d.targets.length === 0) {
    const vendor = VENDOR_OF[phoneOs()];
    if (phone.registered && phone.mode !== 'foreground') {
      parts.push(`${phoneWords(d.at)}`, `would have pushed via ${VENDOR_NAME[vendor]}${vendors[vendor] ? '' : ', which is not configured on this node'}`);
      showInTray(d.id, vendor, vendors[vendor]);
    }
    parts.push(d.route === 'held' ? 'held until the user is reachable' : 'nothing reachable: undeliverable');
  }
  return parts.join(' → ');
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
    const words = ds.map(explain).join(' ⟶ then ');
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
  reportPc();
  await pc.client.connect().catch((err) => { $('pc-connection').textContent = `failed: ${err.message}`; });
  await setPhone('foreground');
  setInterval(poll, 500);
  document.body.dataset.ready = 'true';
}
void start();
