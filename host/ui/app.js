// Hivemind's dashboard: plain JavaScript over the REST API, no framework and no network
// beyond the server that serves it. Pages are drawn with DOM calls (text goes in as text,
// never as HTML), the token travels as the bearer header and is kept in this tab's
// session storage only, and a deployment's page lives on its event stream: what the
// stream pushes is never polled.
'use strict';

const TOKEN_KEY = 'hivemind-token';
const page = { abort: new AbortController(), timers: [] };

// ---------------------------------------------------------------------------- the API

class ApiError extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

async function api(method, path, body, contentType) {
  const headers = { Authorization: 'Bearer ' + token() };
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = contentType || 'application/json';
    payload = contentType ? body : JSON.stringify(body);
  }
  // A page's requests end with the page: a slow answer never draws over the next page.
  const signal = page.abort.signal;
  const response = await fetch(path, { method, headers, body: payload, cache: 'no-store', credentials: 'omit', signal });
  if (response.status === 401) {
    signOut('The server refused the token: sign in again with the one it keeps in DATA_DIR/token.');
    throw new ApiError('not signed in');
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(data && data.error ? data.error.message : `${response.status} ${response.statusText}`);
  }
  return data;
}

// Server-sent events over fetch: EventSource cannot send the Authorization header, and
// the token must not go into a URL.
async function stream(path, onEvent, signal) {
  const response = await fetch(path, {
    headers: { Authorization: 'Bearer ' + token(), Accept: 'text/event-stream' },
    signal, cache: 'no-store', credentials: 'omit',
  });
  if (!response.ok) throw new ApiError(`the event stream answered ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const message = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = 'message';
      let data = '';
      for (const line of message.split('\n')) {
        if (line.startsWith('event:')) kind = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trimStart();
      }
      if (data) onEvent(kind, JSON.parse(data));
    }
  }
}

// ------------------------------------------------------------------------ DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
  for (const child of children.flat()) el.append(child instanceof Node ? child : String(child));
  return el;
}

// A spec leaves out what is empty.
const variantsOf = (d) => d.spec.variants || [];
// What a deployment brings: its version, or its A/B variants.
const targetOf = (d) => (variantsOf(d).length ? variantsOf(d).map((v) => v.name).join(' / ') : d.target_version);
const percent = (x) => `${(x * 100).toFixed(x > 0 && x < 0.001 ? 3 : 2)}%`;
const millis = (x) => `${x.toFixed(1)} ms`;
const clock = (ms) => new Date(ms).toLocaleTimeString();
const when = (ms) => new Date(ms).toLocaleString();

function notify(text, isError) {
  const box = document.getElementById('notice');
  const line = h('p', { class: isError ? 'error' : null, role: isError ? 'alert' : null }, text);
  box.append(line);
  setTimeout(() => line.remove(), isError ? 12000 : 5000);
}

// What each status looks like: a symbol and a word, never colour alone.
const STATUS = {
  pending: ['○', 'idle', 'pending'],
  in_progress: ['▶', 'busy', 'in progress'],
  paused: ['⏸', 'wait', 'paused'],
  awaiting_approval: ['✋', 'wait', 'awaiting approval'],
  completed: ['✓', 'good', 'completed'],
  failed: ['✗', 'bad', 'failed'],
  rolling_back: ['↺', 'wait', 'rolling back'],
  rolled_back: ['↺', 'idle', 'rolled back'],
  aborted: ['■', 'bad', 'aborted'],
};
const TERMINAL = ['completed', 'failed', 'rolled_back', 'aborted'];

function statusBadge(status) {
  const [symbol, tone, words] = STATUS[status] || ['?', 'idle', status];
  return h('span', { class: `badge ${tone}`, 'data-status': status }, `${symbol} ${words}`);
}

function splitBar(split) {
  const total = split.reduce((sum, [, w]) => sum + w, 0);
  const label = split.length ? split.map(([v, w]) => `${v} ${w}%`).join(', ') : 'no traffic yet';
  const bar = h('div', { class: 'split', role: 'img', 'aria-label': `Traffic: ${label}` });
  if (!total) bar.append(h('span', { class: 'none' }, 'no traffic'));
  for (const [version, weight] of split) {
    if (!weight) continue;
    const part = h('span', { 'data-version': version, title: `${version}: ${weight}%` }, `${version} ${weight}%`);
    part.style.width = `${(weight * 100) / total}%`;
    bar.append(part);
  }
  return bar;
}

function confirmAction(title, text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = title;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

// ---------------------------------------------------------------------------- pages

function leavePage() {
  page.abort.abort();
  page.abort = new AbortController();
  for (const t of page.timers) clearInterval(t);
  page.timers = [];
}

function every(ms, fn) {
  if (!page.abort.signal.aborted) page.timers.push(setInterval(fn, ms));
}

function show(view, ...content) {
  const main = document.getElementById('main');
  const moved = document.body.dataset.view !== view;
  main.replaceChildren(...content);
  // A new page takes the focus, as a page load would.
  if (moved && view !== 'signin') main.focus({ preventScroll: true });
  document.body.dataset.view = view;
  for (const link of document.querySelectorAll('#nav a')) {
    const current = location.hash.startsWith(link.getAttribute('href'));
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function route() {
  leavePage();
  if (!token()) return signInPage();
  document.getElementById('nav').hidden = false;
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || '');
  try {
    if (parts[0] === 'apps' && parts[1]) await appPage(parts[1]);
    else if (parts[0] === 'deployments' && parts[1]) await deploymentPage(parts[1]);
    else if (parts[0] === 'history') await historyPage(params);
    else if (parts[0] === 'plugins') await pluginsPage();
    else await appsPage();
  } catch (e) {
    if (!(e instanceof ApiError && e.message === 'not signed in') && e.name !== 'AbortError') {
      show('error', h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  leavePage();
  signInPage(reason);
}

function signInPage(reason) {
  document.getElementById('nav').hidden = true;
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = h('p', { class: 'error', role: 'alert', id: 'signin-error' }, reason || '');
  const form = h('form', { class: 'panel signin', id: 'signin' },
    h('h1', {}, 'Sign in'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { class: 'muted' }, 'The server keeps it in DATA_DIR/token (hm_…). It stays in this tab only.'),
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await api('GET', '/api/cluster');
      if (!location.hash || location.hash === '#/signin') location.hash = '#/apps';
      else route();
    } catch (e) {
      if (!token()) return; // api() has shown the sign-in page again, with why
      error.textContent = e.message;
    }
  });
  show('signin', form);
  input.focus();
}

// Every app, and each one's newest deployment (among the newest 1,000).
async function appsWithLatest() {
  const [apps, deployments] = await Promise.all([api('GET', '/api/apps'), api('GET', '/api/deployments?limit=1000')]);
  const latest = new Map();
  for (const d of deployments) if (!latest.has(d.app)) latest.set(d.app, d);
  return { apps, latest };
}

// The apps: one row each, with release, split, replicas and the last deployment.
async function appsPage() {
  const { apps, latest } = await appsWithLatest();
  const rows = document.createDocumentFragment();
  for (const app of apps) rows.append(appRow(app, latest.get(app.name)));
  const table = h('table', { id: 'apps' },
    h('caption', { class: 'muted' }, `${apps.length} apps`),
    h('thead', {}, h('tr', {},
      ['App', 'Release', 'Traffic', 'Replicas', 'Reached at', 'Last deployment'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows));
  show('apps', h('h1', {}, 'Apps'), apps.length ? table : h('p', { class: 'panel' },
    'No apps yet. Deploy one: hivemind app deploy --name web --image … --strategy rolling-update'));
  performance.mark('hivemind:apps-rendered');
  every(5000, () => refreshApps().catch((e) => {
    if (e.name !== 'AbortError') notify(`Could not refresh the apps: ${e.message}`, true);
  }));
}

async function refreshApps() {
  if (document.body.dataset.view !== 'apps') return;
  const signal = page.abort.signal;
  const { apps, latest } = await appsWithLatest();
  if (signal.aborted) return;
  const body = document.querySelector('#apps tbody');
  // The first app of an empty page: draw the whole page.
  if (!body && apps.length) return route();
  // Redrawn only when something changed, so that keyboard focus stays where it is.
  const key = JSON.stringify([apps, [...latest.values()].map((d) => [d.id, d.status])]);
  if (body && body.dataset.key !== key) {
    body.dataset.key = key;
    body.replaceChildren(...apps.map((app) => appRow(app, latest.get(app.name))));
  }
}

function replicaSummary(app) {
  const healthy = app.replicas.filter((r) => r.healthy).length;
  const parts = [h('span', {}, `${healthy} of ${app.replicas.length} healthy`)];
  if (app.crash_looping && app.crash_looping.length) {
    parts.push(' ', h('span', { class: 'badge bad' }, `⚠ ${app.crash_looping.length} crash looping`));
  }
  if (app.degraded) parts.push(' ', h('span', { class: 'badge wait' }, '⚠ degraded'));
  return parts;
}

function reachedAt(app) {
  const where = [`router port ${app.port}`];
  for (const host of app.hosts || []) where.push(host + (app.path_prefix && app.path_prefix !== '/' ? app.path_prefix : ''));
  return where.join(', ');
}

// Each image a deployment runs and the digest it was pinned to; while its images are
// pulled, the message says how far the pull is.
function imagesOf(d) {
  const asked = variantsOf(d).length ? variantsOf(d).map((v) => v.image) : [d.spec.image];
  const pins = d.images || {};
  return asked.map((image) => pins[image] && pins[image] !== image ? `${image} → ${pins[image]}` : image).join(', ');
}

function appRow(app, last) {
  const href = `#/apps/${encodeURIComponent(app.name)}`;
  return h('tr', { 'data-app': app.name },
    h('th', { scope: 'row' }, h('a', { href }, app.name)),
    h('td', {}, app.release ? h('span', {}, h('strong', {}, app.release.version), h('br'),
      h('span', { class: 'muted mono' }, app.release.image)) : h('span', { class: 'muted' }, 'none')),
    h('td', {}, splitBar(app.split)),
    h('td', {}, replicaSummary(app)),
    h('td', {}, reachedAt(app)),
    h('td', {}, last ? [statusBadge(last.status), ' ',
      h('a', { href: `#/deployments/${encodeURIComponent(last.id)}` }, `${last.strategy} → ${targetOf(last)}`)] : '—'));
}

// One app: its release and replicas, the deployment under way (live), and the recent ones.
async function appPage(name) {
  const title = h('h1', {}, name);
  const summary = h('div', { class: 'panel', id: 'app-summary' });
  const live = h('div', { id: 'app-live' });
  const recent = h('div', { id: 'app-recent' });
  show('app', h('p', {}, h('a', { href: '#/apps' }, '← Apps')), title, summary, live, recent);
  let liveId = null;
  let livePanel = null;
  let shown = '';
  const refresh = async () => {
    const signal = page.abort.signal;
    const [app, deployments] = await Promise.all([
      api('GET', `/api/apps/${encodeURIComponent(name)}`),
      api('GET', `/api/deployments?app=${encodeURIComponent(name)}&limit=10`),
    ]);
    if (signal.aborted) return;
    // Redrawn only when something changed, so that keyboard focus stays where it is.
    const key = JSON.stringify([app, deployments.map((d) => [d.id, d.status, d.message])]);
    if (key !== shown) {
      shown = key;
      drawApp(app, deployments);
    }
    // The newest deployment, followed live while it runs (one that started and ended
    // between two refreshes is shown too).
    const latest = deployments[0];
    if (latest && latest.id !== liveId) {
      const panel = await deploymentPanel(latest.id, signal);
      if (signal.aborted) return;
      if (livePanel) livePanel.stop();
      livePanel = panel;
      liveId = latest.id;
      live.replaceChildren(h('h2', {}, 'Latest deployment'), panel);
    }
  };
  const drawApp = (app, deployments) => {
    summary.replaceChildren(
      h('dl', { class: 'facts' },
        h('dt', {}, 'Release'), h('dd', {}, app.release ? `${app.release.version} (${app.release.image}), ${app.release.replicas} replicas` : 'none'),
        app.release && app.release.pinned ? [h('dt', {}, 'Pinned to'), h('dd', { class: 'mono' }, app.release.pinned)] : null,
        h('dt', {}, 'Traffic'), h('dd', { id: 'app-split' }, splitBar(app.split)),
        h('dt', {}, 'Replicas'), h('dd', {}, replicaSummary(app)),
        h('dt', {}, 'Reached at'), h('dd', {}, reachedAt(app))),
      replicaTable(app));
    recent.replaceChildren(h('h2', {}, 'Recent deployments'), deploymentTable(deployments));
  };
  await refresh();
  // The app and its list of deployments are not streamed: they are fetched every two
  // seconds. A deployment under way is shown from its own stream.
  let lastError = '';
  let busy = false;
  every(2000, () => {
    if (busy) return;
    busy = true;
    refresh().then(() => { lastError = ''; }, (e) => {
      if (e.name === 'AbortError') return;
      if (e.message !== lastError) notify(`Could not refresh ${name}: ${e.message}`, true);
      lastError = e.message;
    }).finally(() => { busy = false; });
  });
}

function replicaTable(app) {
  if (!app.replicas.length) return h('p', { class: 'muted' }, 'No replicas run.');
  return h('table', { class: 'replicas' },
    h('thead', {}, h('tr', {}, ['Replica', 'Version', 'Health', 'Address', 'Started'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, app.replicas.map((r) => h('tr', {},
      h('td', { class: 'mono' }, r.id),
      h('td', {}, r.version),
      h('td', {}, r.healthy ? h('span', { class: 'badge good' }, '✓ healthy') : h('span', { class: 'badge bad' }, '✗ not healthy')),
      h('td', { class: 'mono' }, r.address),
      h('td', {}, when(r.started_at_ms))))));
}

function deploymentTable(deployments) {
  if (!deployments.length) return h('p', { class: 'muted' }, 'No deployments match.');
  return h('table', { class: 'deployments' },
    h('thead', {}, h('tr', {}, ['Deployment', 'App', 'Strategy', 'Version', 'Status', 'Started', 'Message']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, deployments.map((d) => h('tr', { 'data-deployment': d.id },
      h('td', {}, h('a', { href: `#/deployments/${encodeURIComponent(d.id)}`, class: 'mono' }, d.id)),
      h('td', {}, h('a', { href: `#/apps/${encodeURIComponent(d.app)}` }, d.app)),
      h('td', {}, d.strategy),
      h('td', {}, targetOf(d)),
      h('td', {}, statusBadge(d.status), d.status === 'in_progress' ? ` ${d.progress}%` : ''),
      h('td', {}, when(d.created_at_ms)),
      h('td', {}, d.error || d.message)))));
}

async function deploymentPage(id) {
  const signal = page.abort.signal;
  const panel = await deploymentPanel(id, signal);
  show('deployment', h('p', {}, h('a', { href: '#/history' }, '← History')), panel);
}

// ----------------------------------------------------------------- one deployment

// A deployment, drawn once from the API, then kept up to date by its event stream.
async function deploymentPanel(id, pageSignal) {
  const path = `/api/deployments/${encodeURIComponent(id)}`;
  // The panel's stream ends with the page, or when a newer deployment replaces it.
  const own = new AbortController();
  pageSignal.addEventListener('abort', () => own.abort(), { once: true });
  const signal = own.signal;
  const [d, events, series] = await Promise.all([api('GET', path), api('GET', `${path}/events`), api('GET', `${path}/series`)]);
  // The app's split and port (absent once the app is removed).
  const app = await api('GET', `/api/apps/${encodeURIComponent(d.app)}`).catch(() => null);
  const view = { d, series, events: [], app, split: app ? app.split : [] };

  const heading = h('h2', { id: `deployment-title-${id}` }, `Deployment ${id}`);
  const status = h('div', { class: 'panel status' });
  const controls = h('div', { class: 'controls', id: 'controls', role: 'group', 'aria-label': 'Actions' });
  const strategyPanel = h('div', { class: 'strategy' });
  const charts = h('div', { class: 'charts-panel' });
  const timeline = h('ol', { class: 'timeline hide-debug', id: `timeline-${id}`, 'aria-label': 'Events' });
  const details = h('input', { type: 'checkbox', id: `debug-${id}`,
    onchange: () => timeline.classList.toggle('hide-debug', !details.checked) });
  const panel = h('section', { class: 'deployment', 'data-id': id, 'aria-labelledby': heading.id },
    heading, status, controls, strategyPanel, charts, h('h3', {}, 'Timeline'),
    h('p', {}, details, ' ', h('label', { for: details.id }, 'Show each step (debug events)')), timeline);

  const draw = () => {
    const x = view.d;
    status.replaceChildren(
      h('dl', { class: 'facts' },
        h('dt', {}, 'App'), h('dd', {}, h('a', { href: `#/apps/${encodeURIComponent(x.app)}` }, x.app)),
        h('dt', {}, 'Strategy'), h('dd', {}, `${x.strategy} (${x.plugin.name} ${x.plugin.version})`),
        h('dt', {}, 'Version'), h('dd', {}, x.previous ? `${x.previous.version} → ${targetOf(x)}` : `${targetOf(x)} (first release)`),
        h('dt', {}, 'Images'), h('dd', { class: 'mono', 'data-field': 'images' }, imagesOf(x)),
        h('dt', {}, 'Status'), h('dd', { 'data-field': 'status' }, statusBadge(x.status), ` phase: ${x.phase}`),
        h('dt', {}, 'Progress'), h('dd', { class: 'progress' },
          h('progress', { max: 100, value: x.progress, 'aria-label': 'Progress', 'data-field': 'progress' }),
          h('span', { 'data-field': 'progress-text' }, `${x.progress}%`)),
        h('dt', {}, 'Message'), h('dd', { 'data-field': 'message' }, x.message),
        x.error ? [h('dt', {}, 'Error'), h('dd', { class: 'error', 'data-field': 'error' }, x.error)] : null,
        h('dt', {}, 'Traffic'), h('dd', { 'data-field': 'split' }, splitBar(view.split)),
        h('dt', {}, 'Started'), h('dd', {}, when(x.created_at_ms))));
    // The buttons are redrawn only when the status changes, so that focus stays put.
    if (controls.dataset.status !== x.status) {
      controls.dataset.status = x.status;
      controls.replaceChildren(...actions(view, () => refetch()));
    }
    strategyPanel.replaceChildren(...strategyDetails(view));
    charts.replaceChildren(...chartsOf(view));
  };
  const seen = new Set();
  const addEvents = (list) => {
    for (const e of list) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      view.events.push(e);
      const level = { info: 'ℹ info', warn: '⚠ warn', error: '✗ error', debug: '· debug' }[e.level] || e.level;
      timeline.append(h('li', { class: e.level, 'data-event': e.id },
        h('time', { datetime: new Date(e.at_ms).toISOString() }, clock(e.at_ms)),
        h('span', { class: 'lvl' }, level), e.message));
    }
  };
  const refetch = async () => {
    view.d = await api('GET', path);
    view.app = await api('GET', `/api/apps/${encodeURIComponent(view.d.app)}`).catch(() => view.app);
    controls.dataset.status = '';
    draw();
  };
  addEvents(events);
  draw();

  // Live: status, events and figures come from the stream, nothing is polled.
  const follow = async () => {
    try {
      await stream(`${path}/events/stream`, (kind, data) => {
        if (kind === 'event') {
          addEvents([data]);
          if (TERMINAL.includes(view.d.status)) draw();
        } else if (kind === 'status') {
          view.d = data;
          draw();
        } else if (kind === 'series') {
          mergeSeries(view, data);
          draw();
        }
      }, signal);
      // The stream ends after the deployment does (or the connection was lost): catch up.
      const lastEvent = view.events.length ? view.events[view.events.length - 1].id : 0;
      addEvents(await api('GET', `${path}/events?after=${lastEvent}`));
      view.d = await api('GET', path);
      if (!TERMINAL.includes(view.d.status)) {
        draw();
        setTimeout(() => { if (!signal.aborted) follow(); }, 1000);
        return;
      }
      view.series = await api('GET', `${path}/series`);
      const last = view.series.samples[view.series.samples.length - 1];
      if (last) view.split = last.versions.filter((v) => v.weight > 0).map((v) => [v.version, v.weight]);
      const appNow = await api('GET', `/api/apps/${encodeURIComponent(view.d.app)}`).catch(() => null);
      if (appNow) view.split = appNow.split;
      if (!signal.aborted) draw();
    } catch (e) {
      if (e.name !== 'AbortError' && !signal.aborted) notify(`Lost the live view of ${id}: ${e.message}; reload to see where it stands.`, true);
    }
  };
  if (!TERMINAL.includes(d.status)) follow();
  panel.stop = () => own.abort();
  return panel;
}

function mergeSeries(view, update) {
  const known = new Set(view.series.samples.map((s) => s.at_ms));
  for (const sample of update.samples) if (!known.has(sample.at_ms)) view.series.samples.push(sample);
  // An hour, as the server keeps.
  if (view.series.samples.length > 3600) view.series.samples.splice(0, view.series.samples.length - 3600);
  view.series.steps = update.steps;
  view.series.totals = update.totals;
  const last = update.samples[update.samples.length - 1];
  if (last) {
    const weighted = last.versions.filter((v) => v.weight > 0).map((v) => [v.version, v.weight]);
    // The sample knows the compared versions' weights; keep any other version's share out.
    if (weighted.length) view.split = weighted;
  }
}

// The buttons for what the API allows now, each with a confirmation that says what happens.
function actions(view, after) {
  const d = view.d;
  const id = d.id;
  const stable = d.previous ? d.previous.version : null;
  const run = (label, verb, body, text) => h('button', {
    type: 'button', class: label === 'Abort' || label === 'Roll back' ? 'danger' : null,
    onclick: async () => {
      // The text is made when asked, from the deployment as it is now.
      if (!(await confirmAction(label, typeof text === 'function' ? text() : text))) return;
      try {
        const result = await api('POST', `/api/deployments/${encodeURIComponent(id)}/${verb}`, body);
        notify(`${label}: done for ${id}.`);
        // A rollback of a completed deployment is a new deployment: show that one.
        if (result && result.id && result.id !== id) location.hash = `#/deployments/${encodeURIComponent(result.id)}`;
        else await after();
      } catch (e) {
        notify(`${label} refused: ${e.message}`, true);
      }
    },
  }, label);
  const list = [];
  const restore = stable ? `${stable} serves all traffic again` : 'its replicas are stopped';
  if (d.status === 'pending') list.push(run('Run', 'execute', undefined, `Run deployment ${id}: ${d.strategy} to ${d.target_version}.`));
  if (d.status === 'in_progress') {
    list.push(run('Pause', 'pause', undefined,
      `Stop deployment ${id} between two steps. Traffic stays as it is until you resume.`));
  }
  if (d.status === 'paused') list.push(run('Resume', 'resume', undefined, `Go on with deployment ${id} from where it paused.`));
  if (d.status === 'awaiting_approval' && !variantsOf(d).length) {
    list.push(run('Promote', 'promote', undefined,
      () => `Release the manual gate of deployment ${id}: ${d.target_version} goes on to its next step. (${view.d.message})`));
  }
  if (variantsOf(d).length && ['in_progress', 'paused', 'awaiting_approval'].includes(d.status)) {
    for (const v of variantsOf(d)) {
      list.push(run(`Select winner ${v.name}`, 'select-winner', { variant: v.name },
        `Make variant ${v.name} (${v.image}) the release of ${d.app}: it gets all traffic and the other variants are drained and stopped.`));
    }
  }
  if (['pending', 'in_progress', 'paused', 'awaiting_approval'].includes(d.status)) {
    list.push(run('Abort', 'abort', undefined, `Stop deployment ${id} and roll back what it did: ${restore}.`));
  }
  // The API rolls back only the deployment whose version the app still serves.
  const serving = view.app && view.app.release ? view.app.release.version : null;
  if (d.status === 'completed' && stable && serving === d.target_version) {
    list.push(run('Roll back', 'rollback', undefined,
      `Put ${stable} back as the release of ${d.app} with a new deployment; ${d.target_version} is drained and stopped.`));
  }
  if (!list.length) list.push(h('span', { class: 'muted' }, 'No action applies now.'));
  return list;
}

// ------------------------------------------------------------- per-strategy details

function strategyDetails(view) {
  const d = view.d;
  if (d.strategy === 'canary') return canaryDetails(view);
  if (d.strategy === 'ab-testing' || variantsOf(d).length) return abDetails(view);
  if (d.strategy === 'blue-green') return blueGreenDetails(view);
  return [];
}

function canarySchedule(params) {
  const steps = (params.steps || '').split(',').map((x) => parseInt(x, 10)).filter((x) => x > 0 && x <= 100);
  const first = params.percentage ? parseInt(params.percentage, 10) : (steps[0] || 20);
  const schedule = [first, ...steps.filter((x) => x > first)];
  if (schedule[schedule.length - 1] !== 100) schedule.push(100);
  return schedule;
}

function canaryDetails(view) {
  const d = view.d;
  const out = [h('h3', {}, 'Canary steps')];
  const share = (view.split.find(([v]) => v === d.target_version) || [null, 0])[1];
  const schedule = canarySchedule(d.spec.params || {});
  const current = TERMINAL.includes(d.status) ? -1 : schedule.findIndex((x) => x >= share && share > 0);
  out.push(h('ol', { class: 'steps', 'aria-label': '--steps' }, schedule.map((x, i) => h('li', {
    class: current > i || (d.status === 'completed') ? 'done' : null,
    'aria-current': i === current ? 'step' : null,
  }, `${x}%`, i === current ? ' (now)' : ''))));
  out.push(h('p', {}, `The canary ${d.target_version} has ${share}% of the traffic`,
    d.previous ? `; stable ${d.previous.version} the rest.` : '.'));
  out.push(...stepAnalyses(view));
  const verdicts = view.events.filter((e) => (e.level === 'info' || e.level === 'error') && /analysis/.test(e.message));
  if (verdicts.length) {
    out.push(h('h3', {}, "The strategy's verdicts"),
      h('ul', { class: 'verdicts' }, verdicts.map((e) => h('li', { class: e.level === 'error' ? 'verdict-bad' : null },
        `${clock(e.at_ms)} ${e.level === 'error' ? '✗' : '✓'} ${e.message}`))));
  }
  return out;
}

const VERDICT = {
  not_enough_data: 'not enough data',
  no_significant_difference: 'no significant difference',
  significantly_worse: 'significantly worse',
  significantly_better: 'significantly better',
};
const TEST = { 'two-proportion-z': 'two-proportion z', 'mann-whitney-u': 'Mann–Whitney U' };
const METRIC = { 'error-rate': 'error rate', latency: 'latency', goal: 'goal rate' };

function comparisonCells(c) {
  const tone = c.verdict === 'significantly_worse' ? 'verdict-bad' : c.verdict === 'significantly_better' ? 'verdict-good' : null;
  const symbol = c.verdict === 'significantly_worse' ? '✗ ' : c.verdict === 'significantly_better' ? '★ ' : '';
  return [
    h('td', {}, `${c.version} vs ${c.baseline}`),
    h('td', {}, METRIC[c.metric] || c.metric),
    h('td', {}, TEST[c.test] || c.test),
    h('td', { class: 'num' }, c.statistic.toFixed(2)),
    h('td', { class: 'num' }, c.p.toFixed(4)),
    h('td', { class: tone }, symbol + (VERDICT[c.verdict] || c.verdict)),
  ];
}

// Hivemind's analysis of each traffic split the deployment went through.
function stepAnalyses(view) {
  const steps = view.series.steps.filter((st) => st.versions.some((v) => v.requests > 0));
  if (!steps.length) return [h('p', { class: 'muted' }, 'No analysis yet: no traffic has been counted.')];
  const rows = [];
  for (const st of steps) {
    const split = st.split.filter(([, w]) => w > 0).map(([v, w]) => `${v} ${w}%`).join(' / ');
    const figures = st.versions.map((v) => `${v.version}: ${v.requests} requests, ${percent(v.error_rate)} errors, p99 ${millis(v.p99_ms)}`).join('; ');
    const tests = st.comparisons.filter((c) => c.metric !== 'goal' || st.versions.some((v) => v.goals > 0));
    const period = `${clock(st.from_ms)}–${st.to_ms ? clock(st.to_ms) : 'now'}`;
    if (!tests.length) {
      rows.push(h('tr', {}, h('td', {}, split), h('td', {}, period), h('td', {}, figures), h('td', { colspan: 6, class: 'muted' }, 'one version only')));
    }
    tests.forEach((c, i) => rows.push(h('tr', { class: c.verdict === 'significantly_worse' ? 'failed' : null },
      i === 0 ? [h('td', { rowspan: tests.length }, split), h('td', { rowspan: tests.length }, period),
        h('td', { rowspan: tests.length }, figures)] : null,
      comparisonCells(c))));
  }
  return [
    h('h3', {}, 'Analysis of each step'),
    h('table', { class: 'analyses' },
      h('thead', {}, h('tr', {}, ['Split', 'When', 'Figures', 'Compared', 'Metric', 'Test', 'Statistic', 'p', 'Verdict']
        .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)),
  ];
}

function abDetails(view) {
  const d = view.d;
  const totals = view.series.totals;
  const byName = new Map((totals ? totals.versions : []).map((v) => [v.version, v]));
  const weight = new Map(view.split);
  const out = [h('h3', {}, 'Variants')];
  out.push(h('table', { class: 'variants' },
    h('thead', {}, h('tr', {}, ['Variant', 'Image', 'Share', 'Requests', 'Error rate', 'p99', 'Goals', 'Goal rate']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, variantsOf(d).map((v) => {
      const m = byName.get(v.name);
      return h('tr', { 'data-variant': v.name },
        h('th', { scope: 'row' }, v.name, d.winner === v.name ? ' ★ winner' : ''),
        h('td', { class: 'mono' }, v.image),
        h('td', { class: 'num' }, `${weight.has(v.name) ? weight.get(v.name) : v.percentage}%`),
        h('td', { class: 'num', 'data-field': 'requests' }, m ? m.requests : 0),
        h('td', { class: 'num' }, m ? percent(m.error_rate) : '—'),
        h('td', { class: 'num' }, m ? millis(m.p99_ms) : '—'),
        h('td', { class: 'num' }, m ? m.goals : 0),
        h('td', { class: 'num' }, m ? percent(m.goal_rate) : '—'));
    }))));
  if (totals && totals.comparisons.length) {
    out.push(h('h3', {}, 'Significance, each variant against each other'),
      h('table', { class: 'significance' },
        h('thead', {}, h('tr', {}, ['Compared', 'Metric', 'Test', 'Statistic', 'p', 'Verdict'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, totals.comparisons.map((c) => h('tr', { 'data-metric': c.metric, 'data-pair': `${c.version} vs ${c.baseline}` },
          comparisonCells(c))))));
  }
  const rule = (d.spec.params || {})['winner-metric'];
  const won = view.events.find((e) => / wins \(/.test(e.message));
  let verdict;
  if (d.winner) verdict = `${d.winner} won${won ? `: ${won.message}` : ''}.`;
  else if (d.status === 'awaiting_approval') verdict = d.message;
  else verdict = `The test runs for ${(d.spec.params || {}).duration || 3600} s; no winner yet.`;
  out.push(h('p', { 'data-field': 'winner-rule' }, h('strong', {}, 'Winner rule: '),
    rule ? `the variant with the significantly best ${rule} wins` : 'a person picks the winner (select winner)'),
  h('p', { 'data-field': 'winner-verdict' }, h('strong', {}, 'Verdict: '), verdict));
  return out;
}

function blueGreenDetails(view) {
  const d = view.d;
  const blue = d.previous ? d.previous.version : null;
  const green = d.target_version;
  const serving = view.split.filter(([, w]) => w > 0).map(([v]) => v);
  const colour = (v) => (v === green ? `green (${v})` : v === blue ? `blue (${v})` : v);
  const port = view.app ? view.app.port : '<router port>';
  const out = [h('h3', {}, 'Blue-green'),
    h('p', { 'data-field': 'serving' }, h('strong', {}, 'Serving: '), serving.length ? serving.map(colour).join(' and ') : 'nothing yet'),
    h('p', {}, h('strong', {}, 'Preview route: '), `green ${green} answers requests with the header x-hivemind-variant: ${green} and the app's preview key, for example `,
      h('code', {}, `curl -H "x-hivemind-preview: $(hivemind app preview-key --name ${d.app})" -H 'x-hivemind-variant: ${green}' http://127.0.0.1:${port}/`))];
  const switched = view.events.find((e) => e.message.startsWith('switched all traffic to green'));
  const delay = parseInt((d.spec.params || {})['scale-down-delay'] || '30', 10);
  if (switched && blue) {
    if (!view.countdown) {
      view.countdown = h('p', { 'data-field': 'scale-down' });
      const tick = () => {
        const left = Math.max(0, Math.ceil((switched.at_ms + delay * 1000 - Date.now()) / 1000));
        view.countdown.textContent = left > 0
          ? `Blue ${blue} is kept idle for an instant rollback: scaled down in ${left} s.`
          : `Blue ${blue} was scaled down ${delay} s after the switch.`;
      };
      tick();
      // A clock, not a poll: the countdown is computed from the switch's time.
      every(1000, tick);
    }
    out.push(view.countdown);
  }
  return out;
}

// ------------------------------------------------------------------------- charts

function chartsOf(view) {
  const samples = view.series.samples;
  if (!samples.length || !samples.some((s) => s.versions.some((v) => v.requests > 0))) return [];
  const versions = [...new Set(samples.flatMap((s) => s.versions.map((v) => v.version)))];
  return [h('h3', {}, 'Traffic, second by second'),
    h('div', { class: 'charts' },
      lineChart('Error rate', samples, versions, (v) => v.error_rate, percent, 0.01),
      lineChart('p99 latency', samples, versions, (v) => v.p99_ms, millis, 5))];
}

function lineChart(title, samples, versions, value, format, floor) {
  const W = 560, H = 170, L = 58, R = 10, T = 10, B = 24;
  const t0 = samples[0].at_ms, t1 = Math.max(samples[samples.length - 1].at_ms, t0 + 1000);
  const points = (version) => samples.map((s) => {
    const v = s.versions.find((x) => x.version === version);
    return v && v.requests > 0 ? [s.at_ms, value(v)] : null;
  }).filter(Boolean);
  const top = Math.max(floor, ...versions.flatMap((v) => points(v).map(([, y]) => y))) * 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img' });
  const latest = versions.map((v) => {
    const p = points(v);
    return p.length ? `${v} ${format(p[p.length - 1][1])}` : `${v} no traffic`;
  });
  svg.append(s('title', {}, `${title} per second; latest: ${latest.join(', ')}`));
  for (const f of [0, 0.5, 1]) {
    svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: y(top * f), y2: y(top * f) }),
      s('text', { x: L - 6, y: y(top * f) + 4, 'text-anchor': 'end' }, format(top * f)));
  }
  svg.append(s('text', { x: L, y: H - 6 }, clock(t0)), s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, clock(t1)));
  versions.forEach((v, i) => {
    const p = points(v);
    if (p.length) svg.append(s('polyline', { class: `s${i % 4}`, 'data-version': v, points: p.map(([t, val]) => `${x(t).toFixed(1)},${y(val).toFixed(1)}`).join(' ') }));
    // A line needs two points: the first seconds show as dots.
    if (p.length < 3) for (const [t, val] of p) svg.append(s('circle', { class: `s${i % 4}`, cx: x(t).toFixed(1), cy: y(val).toFixed(1), r: 3 }));
  });
  // The legend repeats each line's dash pattern and says its latest value in words.
  const legend = h('div', { class: 'legend' }, versions.map((v, i) => {
    const key = s('svg', { class: 'chart key', width: 28, height: 10, 'aria-hidden': 'true' },
      s('polyline', { class: `s${i % 4}`, points: '0,5 28,5' }));
    return h('span', {}, key, ` ${latest[i]}`);
  }));
  return h('figure', { 'data-chart': title }, h('figcaption', {}, title), svg, legend);
}

// ------------------------------------------------------------------------ history

async function historyPage(params) {
  const [apps, plugins] = await Promise.all([api('GET', '/api/apps'), api('GET', '/api/plugins')]);
  const query = new URLSearchParams();
  for (const key of ['app', 'status', 'strategy']) if (params.get(key)) query.set(key, params.get(key));
  query.set('limit', '200');
  const deployments = await api('GET', `/api/deployments?${query}`);
  const select = (name, label, options) => h('label', {}, label, h('select', { name, id: `filter-${name}` },
    h('option', { value: '' }, 'any'),
    options.map((o) => h('option', { value: o, selected: params.get(name) === o }, o.replace(/_/g, ' ')))));
  const form = h('form', { class: 'inline panel', id: 'filters', 'aria-label': 'Filters' },
    select('app', 'App', apps.map((a) => a.name)),
    select('status', 'Status', Object.keys(STATUS)),
    select('strategy', 'Strategy', plugins.filter((p) => p.kind === 'strategy').map((p) => p.name)),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) chosen.set(k, v);
    location.hash = `#/history${chosen.toString() ? '?' + chosen : ''}`;
  });
  show('history', h('h1', {}, 'History'), form, h('p', { class: 'muted' }, `${deployments.length} deployments`),
    deploymentTable(deployments));
}

// ------------------------------------------------------------------------ plugins

/** Who signed a plugin, in words (as `hivemind plugin inspect` says it). */
function signedBy(p) {
  if (p.origin === 'builtin') return 'built in';
  if (!p.signature) return 'unsigned';
  return p.signature.verified
    ? `signed by key ID ${p.signature.key_id} (trusted key ${p.signature.trusted_key})`
    : `signed by key ID ${p.signature.key_id}, which this server does not trust: not verified`;
}

async function pluginsPage() {
  const plugins = await api('GET', '/api/plugins');
  const file = h('input', { type: 'file', id: 'plugin-file', accept: '.wasm,application/wasm', required: true });
  const signatureFile = h('input', { type: 'file', id: 'plugin-signature', accept: '.minisig' });
  const replace = h('input', { type: 'checkbox', id: 'plugin-replace' });
  const upload = h('form', { class: 'inline panel', id: 'plugin-upload', 'aria-label': 'Install a plugin' },
    h('label', { for: 'plugin-file' }, 'Component (.wasm)', file),
    h('label', { for: 'plugin-signature' }, 'Signature (.minisig, optional)', signatureFile),
    h('span', {}, replace, ' ', h('label', { for: 'plugin-replace' }, 'Replace the loaded one')),
    h('button', { type: 'submit', class: 'primary' }, 'Install'));
  upload.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return notify('Choose a .wasm file first.', true);
    try {
      const bytes = await chosen.arrayBuffer();
      const q = new URLSearchParams({ source: `upload:${chosen.name}` });
      if (replace.checked) q.set('replace', 'true');
      if (signatureFile.files[0]) q.set('signature', await signatureFile.files[0].text());
      const p = await api('POST', `/api/plugins?${q}`, bytes, 'application/wasm');
      notify(`Installed ${p.name} ${p.version} (${p.kind}), ${signedBy(p)}.`);
      route();
    } catch (e) {
      notify(`Not installed: ${e.message}`, true);
    }
  });
  const body = h('tbody', {});
  for (const p of plugins) {
    const detail = h('tr', { class: 'detail', hidden: true }, h('td', { colspan: 7 }));
    const act = (label, verb, method, text) => h('button', {
      type: 'button', class: method === 'DELETE' ? 'danger' : null, 'aria-label': `${label} ${p.name}`,
      onclick: async () => {
        if (!(await confirmAction(`${label} ${p.name}`, text))) return;
        try {
          await api(method, `/api/plugins/${encodeURIComponent(p.name)}${verb}`);
          notify(`${label}: ${p.name}.`);
          route();
        } catch (e) {
          notify(`${label} refused: ${e.message}`, true);
        }
      },
    }, label);
    const inspect = h('button', {
      type: 'button', 'aria-expanded': 'false', 'aria-label': `Inspect ${p.name}`,
      onclick: async () => {
        const open = inspect.getAttribute('aria-expanded') === 'true';
        inspect.setAttribute('aria-expanded', String(!open));
        detail.hidden = open;
        if (open) return;
        const x = await api('GET', `/api/plugins/${encodeURIComponent(p.name)}`);
        detail.firstChild.replaceChildren(h('dl', { class: 'facts' },
          h('dt', {}, 'World'), h('dd', {}, x.world),
          h('dt', {}, 'API version'), h('dd', {}, x.api_version),
          h('dt', {}, 'Source'), h('dd', {}, x.source || '—'),
          h('dt', {}, 'sha256'), h('dd', { class: 'mono' }, x.sha256),
          h('dt', {}, 'Signature'), h('dd', {}, signedBy(x)),
          ...(x.signature ? [h('dt', {}, 'Signed comment'), h('dd', { class: 'mono' },
            x.signature.verified ? x.signature.comment : `${x.signature.comment} (unverified: the key is not trusted here)`)] : []),
          h('dt', {}, 'Imports'), h('dd', {}, h('ul', {}, x.imports.map((i) => h('li', { class: 'mono' }, i)))),
          h('dt', {}, 'Exports'), h('dd', {}, h('ul', {}, x.exports.map((i) => h('li', { class: 'mono' }, i))))));
      },
    }, 'Inspect');
    const buttons = [inspect, ' ',
      p.enabled
        ? act('Disable', '/disable', 'POST', `New deployments may no longer use ${p.name}; those under way go on with it.`)
        : act('Enable', '/enable', 'POST', `New deployments may use ${p.name} again.`)];
    if (p.origin !== 'builtin') {
      buttons.push(' ', act('Remove', '', 'DELETE', `Unload ${p.name} ${p.version} and delete its file (refused while a deployment uses it).`));
    }
    body.append(h('tr', { 'data-plugin': p.name },
      h('th', { scope: 'row' }, p.name),
      h('td', {}, p.version),
      h('td', {}, p.kind),
      h('td', {}, p.origin),
      h('td', {}, p.enabled ? h('span', { class: 'badge good' }, '✓ enabled') : h('span', { class: 'badge idle' }, '○ disabled')),
      h('td', {}, p.description),
      h('td', {}, buttons)), detail);
  }
  show('plugins', h('h1', {}, 'Plugins'), upload,
    h('table', { id: 'plugins' },
      h('thead', {}, h('tr', {}, ['Name', 'Version', 'Kind', 'Origin', 'State', 'Description', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      body));
}

// -------------------------------------------------------------------------- start

document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));
// The pages live in the URL's fragment: the skip link moves focus instead of the fragment.
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  document.getElementById('main').focus();
});
window.addEventListener('hashchange', route);
route();
