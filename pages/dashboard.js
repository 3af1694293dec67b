// Switchboard operator dashboard. Reads GET /v1/dashboard/stream (server-sent events over fetch, so the bearer key
// can travel in the Authorization header: EventSource cannot send headers). The key lives only in this module.
const $ = (id) => document.getElementById(id);
const HISTORY = 120;
const history = [];
let abort;

$('connect-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const key = $('api-key').value.trim();
  if (key) connect(key);
});
$('disconnect').addEventListener('click', () => disconnect('Disconnected.'));

function setStatus(text, cls = '') {
  const s = $('status');
  s.textContent = text;
  s.className = `status ${cls}`;
}

function disconnect(text, cls) {
  abort?.abort();
  abort = undefined;
  $('disconnect').disabled = true;
  $('connect').disabled = false;
  if (text) setStatus(text, cls);
}

async function connect(key) {
  disconnect();
  const controller = new AbortController();
  abort = controller;
  $('connect').disabled = true;
  $('disconnect').disabled = false;
  setStatus('Connecting…');
  try {
    const res = await fetch('/v1/dashboard/stream', { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' }, signal: controller.signal, cache: 'no-store' });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      const code = body.error?.code ?? res.status;
      return disconnect(code === 'unauthorized' ? 'The API key was refused (401 unauthorized).' : `The node answered ${res.status} ${code}.`, 'bad');
    }
    setStatus('Live.', 'ok');
    await readEvents(res.body, (event, data) => {
      if (event === 'figures') render(JSON.parse(data));
    });
    if (abort === controller) disconnect('The stream ended; connect again.', 'bad');
  } catch (err) {
    if (abort === controller) disconnect(`Connection lost: ${err.message}`, 'bad');
  }
}

/** Minimal text/event-stream parser: `event:` and `data:` lines, a blank line ends an event. */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = 'message';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, '');
      buffer = buffer.slice(nl + 1);
      if (line === '') {
        if (data.length > 0) onEvent(event, data.join('\n'));
        event = 'message';
        data = [];
      } else if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
  }
}

const sum = (rows, key = 'rate') => rows.reduce((s, r) => s + r[key], 0);
const perSecond = (n) => `${n.toFixed(1)}/s`;
const ms = (s) => (s === null ? '–' : s < 0.01 ? `${(s * 1000).toFixed(2)} ms` : `${(s * 1000).toFixed(1)} ms`);

let scope = 'node';
for (const radio of document.querySelectorAll('input[name=scope]')) {
  radio.addEventListener('change', (e) => {
    scope = e.target.value;
    history.length = 0; // the chart shows one scope at a time
  });
}

/** The node's figures, or with "the whole cluster" chosen, the cluster totals (the cluster view stays the same). */
function render(full) {
  const totals = full.cluster?.totals;
  $('scope').classList.toggle('hidden', !totals);
  if (totals) $('answered').textContent = `(${totals.answered} node${totals.answered === 1 ? '' : 's'} answered)`;
  const f = scope === 'cluster' && totals ? { ...totals, cluster: full.cluster } : full;
  $('node-name').textContent = `node ${full.node}`;
  $('window').textContent = f.windowSeconds > 0 ? `(rates over the last ${f.windowSeconds.toFixed(0)} s)` : '';
  const accepted = sum(f.accepted);
  const delivered = sum(f.deliveries);
  $('rate-accepted').textContent = perSecond(accepted);
  // For tests and scripts: the exact figure and the window it covers.
  Object.assign($('rate-accepted').dataset, { value: String(accepted), at: String(f.at), window: String(f.windowSeconds) });
  $('rate-routed').textContent = perSecond(sum(f.routed));
  $('rate-deliveries').textContent = perSecond(delivered);
  $('rate-acks').textContent = perSecond(sum(f.acks));
  $('latency-decision').textContent = `${ms(f.decisionLatency.p50)} / ${ms(f.decisionLatency.p99)}`;
  $('latency-delivery').textContent = `${ms(f.deliveryLatency.p50)} / ${ms(f.deliveryLatency.p99)}`;
  const kind = (k) => f.sessions.find((s) => s.kind === k)?.value ?? 0;
  $('sessions').textContent = `${kind('pc')} / ${kind('mobile')}`;
  // Held messages come from a `switchboard_held*` gauge when the node has one (a counter only when there is no gauge).
  const gauges = f.held.filter((h) => !h.name.endsWith('_total'));
  const held = gauges.length > 0 ? gauges : f.held;
  $('held').textContent = held.length === 0 ? 'not measured' : String(held.reduce((s, h) => s + h.value, 0));

  fillTable('routes', f.routed.map((r) => [r.labels.route, r.labels.reason ?? '', perSecond(r.rate), r.total]));
  fillTable('deliveries', [
    ...f.deliveries.map((r) => [r.labels.via, perSecond(r.rate), r.total]),
    ['acked', perSecond(sum(f.acks)), sum(f.acks, 'total')],
    ...f.ackTimeouts.map((r) => [`ack timeout (${r.labels.kind})`, perSecond(r.rate), r.total]),
  ]);
  fillTable('vendors', f.pushOutcomes.map((r) => [r.labels.vendor, r.labels.outcome, perSecond(r.rate), r.total]));
  renderCluster(full);

  history.push({ accepted, delivered });
  if (history.length > HISTORY) history.shift();
  drawChart();
}

function fillTable(id, rows) {
  const body = $(id).tBodies[0];
  body.replaceChildren(...(rows.length === 0 ? [row(['nothing yet'])] : rows.map(row)));
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = String(c);
    if (typeof c === 'number' || /\/s$/.test(String(c))) td.className = 'num';
    tr.append(td);
  }
  return tr;
}

const PALETTE = ['#2456c7', '#1d7a3a', '#a35a00', '#7b3fb0', '#b3261e', '#00838f', '#6d4c41', '#3949ab'];

function renderCluster(f) {
  const c = f.cluster;
  if (!c) {
    $('cluster-summary').textContent = `Single node: it owns all ${f.ownedPartitions} partitions.`;
    $('nodes').replaceChildren();
    $('partitions').replaceChildren();
    return;
  }
  $('cluster-summary').textContent = `${c.nodes.length} live node(s); this node owns ${f.ownedPartitions} partition(s); lease takeovers seen by this node: ${f.leaseTakeovers}.`;
  const colour = new Map(c.nodes.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
  $('nodes').replaceChildren(...c.nodes.map((n) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = colour.get(n);
    li.append(sw, `${n}: ${c.partitions.filter((p) => p.owner === n).length} partitions`);
    return li;
  }));
  $('partitions').replaceChildren(...c.partitions.map((p) => {
    const cell = document.createElement('span');
    cell.setAttribute('role', 'listitem');
    cell.title = `partition ${p.partition}: ${p.owner || 'free'} (tenure ${p.epoch})`;
    cell.setAttribute('aria-label', cell.title);
    cell.textContent = String(p.partition);
    if (p.owner) cell.style.background = colour.get(p.owner) ?? '#444';
    return cell;
  }));
}

function drawChart() {
  const svg = $('chart');
  const W = 600, H = 140, pad = 16;
  const max = Math.max(1, ...history.map((h) => Math.max(h.accepted, h.delivered)));
  const x = (i) => (W * i) / (HISTORY - 1);
  const y = (v) => H - pad - ((H - 2 * pad) * v) / max;
  const path = (key) => history.map((h, i) => `${i === 0 ? 'M' : 'L'}${x(i + HISTORY - history.length).toFixed(1)},${y(h[key]).toFixed(1)}`).join(' ');
  const ns = 'http://www.w3.org/2000/svg';
  const desc = svg.querySelector('desc');
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
  };
  $('chart-scale').textContent = `scale 0 to ${max.toFixed(1)}/s`;
  svg.replaceChildren(desc,
    el('path', { class: 'rate-accepted', d: path('accepted') }),
    el('path', { class: 'rate-delivered', d: path('delivered') }));
}
