// sessiond console. It reads and closes sessions through the admin API
// only (docs/api-admin.md), with the credentials the browser sent for the
// page. Filtering and paging are the server's: one page is fetched at a
// time, so the console costs the same at ten sessions and at a million.
//
// Live updates poll the current page: every MIN_GAP ms, or 20 times the
// last query's duration when that is longer, so one console never keeps
// the server busy more than ~5% of the time however slow its query is.
// Polling stops while the tab is hidden or the operator pauses it.
'use strict';

const MIN_GAP = 2000;        // ms between two polls at least
const COST_FACTOR = 20;      // ms of gap per ms of the last query
const INSTANCE_GAP = 60000;  // GET /v1/ counts the active sessions: rarer
const FIELDS = 'state,user,user_name,client,remote,connected,last_request,expires,idle';
const FILTERS = ['user', 'state', 'client', 'remote', 'api_key'];

const $ = (id) => document.getElementById(id);
const state = {
  filter: {}, size: 50, page: 0,
  live: true, selected: null,
  doc: null, fetchedAt: 0, lastCost: 0, sig: '', seen: null,
  timer: 0, seq: 0, abort: null, instanceAt: 0,
};

// ---- the API ----

class APIError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(method, path, signal) {
  let r;
  try {
    r = await fetch(path, { method, signal, cache: 'no-store', credentials: 'same-origin', headers: { Accept: 'application/vnd.api+json' } });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError(0, 'the daemon does not answer (' + e.message + ')');
  }
  if (r.status === 204) return null;
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) {
    const e = body && body.errors && body.errors[0];
    let msg = e ? (e.detail || e.title) : r.status + ' ' + r.statusText;
    if (r.status === 401) msg = 'Not signed in, or the admin password changed: reload the page to sign in again.';
    throw new APIError(r.status, msg);
  }
  return body;
}

function query(extra) {
  const q = new URLSearchParams();
  for (const k of FILTERS) if (state.filter[k]) q.set('filter[' + k + ']', state.filter[k]);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return q.toString();
}

function listPath() {
  return '/v1/sessions?' + query({ 'page[size]': state.size, 'page[number]': state.page, 'fields[sessions]': FIELDS });
}

// ---- formatting ----

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });
const nf = new Intl.NumberFormat();

function relative(ms) {
  const s = Math.round(ms / 1000), a = Math.abs(s);
  if (a < 5) return 'just now';
  if (a < 60) return rtf.format(s, 'second');
  if (a < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (a < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86400), 'day');
}

function duration(sec) {
  sec = Math.max(0, Math.floor(sec));
  if (sec < 60) return sec + 's';
  const m = Math.floor(sec / 60);
  if (m < 60) return m + 'm ' + String(sec % 60).padStart(2, '0') + 's';
  const h = Math.floor(m / 60);
  if (h < 24) return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
}

function exact(iso) {
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) + '  ·  ' + iso;
}

// el builds an element; text is always set as text, never as HTML.
function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

// A time that reads relative and shows the exact time on hover; tick()
// keeps the words current between polls.
function timeEl(iso, empty) {
  if (!iso) return el('span', { class: 'muted', text: empty || '—' });
  return el('time', { datetime: iso, title: exact(iso), 'data-rel': '', text: relative(Date.parse(iso) - Date.now()) });
}

function badge(s) { return el('span', { class: 'badge ' + s, text: s }); }

// ---- the table ----

function render(doc) {
  state.doc = doc;
  state.fetchedAt = Date.now();
  const rows = doc.data || [];
  const total = (doc.meta && doc.meta.total) || 0;
  // A page past the end (sessions ended meanwhile): go to the last one.
  if (rows.length === 0 && total > 0 && state.page > 0) {
    state.page = Math.max(0, Math.ceil(total / state.size) - 1);
    saveHash(); refresh(); return;
  }
  // Rebuild the rows only when something but the clock changed.
  const sig = JSON.stringify(rows.map((r) => [r.id, r.attributes.state, r.attributes.last_request, r.attributes.expires]));
  if (sig !== state.sig) {
    const prev = state.seen;
    const tbody = $('rows');
    tbody.replaceChildren(...rows.map((r) => row(r, prev && !prev.has(r.id))));
    state.seen = new Set(rows.map((r) => r.id));
    state.sig = sig;
  }
  $('updated').dataset.at = state.fetchedAt;
  tickIdle();
  const empty = $('empty');
  if (rows.length === 0) {
    const filtered = FILTERS.some((k) => state.filter[k]);
    empty.replaceChildren(
      el('strong', { text: filtered ? 'No session matches these filters' : 'No sessions yet' }),
      filtered ? 'Change or clear the filters.' : 'Sessions appear here as clients open them.');
    empty.hidden = false;
  } else empty.hidden = true;
  const first = state.page * state.size;
  $('range').textContent = total === 0 ? '0 sessions' :
    nf.format(first + 1) + '–' + nf.format(first + rows.length) + ' of ' + nf.format(total) + (total === 1 ? ' session' : ' sessions');
  const pages = Math.max(1, Math.ceil(total / state.size));
  $('pageno').textContent = 'Page ' + nf.format(state.page + 1) + ' of ' + nf.format(pages);
  $('first').disabled = $('prev').disabled = !(doc.links && doc.links.prev);
  $('next').disabled = $('last').disabled = !(doc.links && doc.links.next);
}

function row(r, isNew) {
  const a = r.attributes;
  const tr = el('tr', { 'data-id': r.id, tabindex: '0', class: (isNew ? 'new' : '') + (r.id === state.selected ? ' selected' : '') });
  tr.addEventListener('click', (e) => { if (!e.target.closest('button')) openDetail(r.id); });
  tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') openDetail(r.id); });
  tr.append(
    el('td', { class: 'user', 'data-label': 'User' }, el('b', { text: a.user }), a.user_name ? el('small', { text: a.user_name }) : null),
    el('td', { 'data-label': 'Client', text: a.client || '—' }),
    el('td', { class: 'mono remote', 'data-label': 'Remote', text: a.remote || '—' }),
    el('td', { class: 'state', 'data-label': 'State' }, badge(a.state)),
    el('td', { 'data-label': 'Connected' }, timeEl(a.connected)),
    el('td', { 'data-label': 'Idle' }, el('span', { class: 'time', 'data-idle': a.idle, title: 'Last request: ' + exact(a.last_request), text: duration(a.idle) })),
    el('td', { 'data-label': 'Expires' }, timeEl(a.expires, 'idle timeout')),
    el('td', { class: 'actions' }, a.state === 'active'
      ? el('button', { type: 'button', class: 'danger ghost small', text: 'Close', onclick: () => confirmClose(r.id, a.user) })
      : null),
  );
  return tr;
}

// tickIdle advances the idle times and relative words from the last poll.
function tickIdle() {
  const since = (Date.now() - state.fetchedAt) / 1000;
  for (const s of document.querySelectorAll('[data-idle]')) s.textContent = duration(Number(s.dataset.idle) + since);
  for (const t of document.querySelectorAll('time[data-rel]')) t.textContent = relative(Date.parse(t.dateTime) - Date.now());
  const at = Number($('updated').dataset.at || 0);
  if (at) $('updated').textContent = state.live ? 'updated ' + relative(at - Date.now()) : 'paused';
}

function skeleton() {
  const cells = () => Array.from({ length: 8 }, () => el('td'));
  $('rows').replaceChildren(...Array.from({ length: 6 }, () => el('tr', { class: 'skeleton' }, ...cells())));
  state.sig = '';
}

// ---- polling ----

function schedule() {
  clearTimeout(state.timer);
  if (!state.live || document.hidden) return;
  state.timer = setTimeout(refresh, Math.max(MIN_GAP, COST_FACTOR * state.lastCost));
}

async function refresh() {
  clearTimeout(state.timer);
  if (state.abort) state.abort.abort();
  const ctl = new AbortController();
  state.abort = ctl;
  const my = ++state.seq;
  const t0 = performance.now();
  try {
    if (state.selected) loadDetail(state.selected, ctl.signal).catch(() => {}); // the panel keeps its last view
    if (Date.now() - state.instanceAt > INSTANCE_GAP) { state.instanceAt = Date.now(); loadInstance(); }
    const doc = await api('GET', listPath(), ctl.signal);
    if (my !== state.seq) return;
    state.lastCost = performance.now() - t0;
    showError(null);
    render(doc);
  } catch (e) {
    if (e.name === 'AbortError' || my !== state.seq) return;
    showError(e);
  } finally {
    if (my === state.seq) { state.abort = null; schedule(); }
  }
}

async function loadInstance() {
  try {
    const doc = await api('GET', '/v1/');
    const a = doc.data.attributes;
    $('instance').replaceChildren(
      el('b', { text: doc.data.id }), ' · ', (/^\d/.test(a.version) ? 'v' : '') + a.version, ' · ', a.store, ' store · ',
      el('b', { text: nf.format(a.sessions.active) }), ' active', ' · up ', el('span', { class: 'time', title: exact(a.started), text: duration((Date.now() - Date.parse(a.started)) / 1000) }));
  } catch { /* the table shows the error */ }
}

function showError(e) {
  const b = $('error');
  if (!e) { b.hidden = true; return; }
  b.textContent = e.message + (e.status === 401 ? '' : ' — retrying.');
  b.hidden = false;
  // The table keeps the last page of this view; with none yet, say so.
  if (state.sig === '') {
    $('rows').replaceChildren();
    $('empty').replaceChildren(el('strong', { text: 'Could not load sessions' }), e.message);
    $('empty').hidden = false;
  }
}

function setLive(on) {
  state.live = on;
  $('live').setAttribute('aria-pressed', String(on));
  $('live-text').textContent = on ? 'Live' : 'Paused';
  if (on) refresh(); else { clearTimeout(state.timer); tickIdle(); }
}

// ---- the detail panel ----

async function openDetail(id) {
  state.selected = id;
  for (const tr of document.querySelectorAll('#rows tr')) tr.classList.toggle('selected', tr.dataset.id === id);
  const panel = $('detail');
  if (panel.hidden || panel.dataset.id !== id) {
    panel.dataset.id = id;
    $('detail-title').textContent = 'Session';
    $('detail-body').replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
    panel.hidden = false;
  }
  try { await loadDetail(id); } catch (e) {
    if (e.name !== 'AbortError') $('detail-body').replaceChildren(el('div', { class: 'banner', text: e.message }));
  }
}

function closeDetail() {
  state.selected = null;
  $('detail').hidden = true;
  for (const tr of document.querySelectorAll('#rows tr.selected')) tr.classList.remove('selected');
}

async function loadDetail(id, signal) {
  const [s, c] = await Promise.all([
    api('GET', '/v1/sessions/' + encodeURIComponent(id), signal),
    api('GET', '/v1/sessions/' + encodeURIComponent(id) + '/connections', signal),
  ]);
  if (state.selected !== id) return;
  const a = s.data.attributes;
  const json = (v) => el('pre', { class: 'json', text: v === null || v === undefined ? 'null' : JSON.stringify(v, null, 2) });
  const prop = (k, v) => [el('dt', { text: k }), el('dd', {}, v === '' || v === null || v === undefined ? el('span', { class: 'muted', text: '—' }) : v)];
  $('detail-title').textContent = a.user_name ? a.user_name + ' (' + a.user + ')' : a.user;
  const conns = c.data || [];
  $('detail-body').replaceChildren(
    el('div', { class: 'detail-actions' }, badge(a.state), el('span', { class: 'spacer' }),
      a.state === 'active' ? el('button', { type: 'button', id: 'detail-close-session', class: 'danger', text: 'Close session…', onclick: () => confirmClose(id, a.user) }) : null),
    el('dl', { class: 'props' },
      ...prop('ID', el('span', { class: 'mono', text: s.data.id })),
      ...prop('User', a.user), ...prop('User name', a.user_name), ...prop('Client', a.client),
      ...prop('Remote', a.remote ? el('span', { class: 'mono', text: a.remote }) : ''),
      ...prop('API key', a.api_key ? el('span', { class: 'mono', text: a.api_key }) : ''),
      ...prop('Connected', timeEl(a.connected)), ...prop('Last request', timeEl(a.last_request)),
      ...prop('Expires', timeEl(a.expires, 'idle timeout only')), ...prop('Idle', duration(a.idle)),
      ...prop('I/O activity', nf.format(a.io_activity) + (a.io_activity === 1 ? ' request' : ' requests') + ' in the last 30 s'),
      ...prop('Memory', nf.format(a.memory.total) + ' bytes')),
    el('h3', { text: 'Data' }), json(a.data),
    el('h3', { text: 'User data' }), json(a.user_data),
    el('h3', { text: 'Connections (' + conns.length + ')' }),
    conns.length === 0 ? el('p', { class: 'muted', text: 'No gateway connections: this session has not used the gateway.' }) :
      el('div', { class: 'table-wrap' }, el('table', { class: 'conns' },
        el('thead', {}, el('tr', {}, ...['Service', 'State', 'Requests', 'Read', 'Written', 'Errors', 'Last used'].map((h) => el('th', { text: h })))),
        el('tbody', {}, ...conns.map((x) => {
          const st = x.attributes.statistics;
          return el('tr', {}, el('td', { class: 'mono', text: x.attributes.server }), el('td', {}, badge(x.attributes.state)),
            el('td', { class: 'num', text: nf.format(st.requests) }), el('td', { class: 'num', text: nf.format(st.reads) + ' B' }),
            el('td', { class: 'num', text: nf.format(st.writes) + ' B' }), el('td', { class: 'num', text: nf.format(st.errors) }),
            el('td', {}, timeEl(st.last_used)));
        })))),
  );
}

// ---- closing ----

function ask(title, text, ok) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

function toast(msg) {
  const t = $('toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

async function confirmClose(id, user) {
  const ok = await ask('Close this session?', 'Session ' + id + ' of user ' + user +
    ' ends now: its token stops working on every instance.', 'Close session');
  if (!ok) return;
  try {
    await api('DELETE', '/v1/sessions/' + encodeURIComponent(id));
    toast('Session closed');
  } catch (e) { toast('Close failed: ' + e.message); }
  refresh();
}

async function confirmCloseAll() {
  const f = FILTERS.filter((k) => state.filter[k]).map((k) => k + ' = ' + state.filter[k]).join(', ');
  let open = 0;
  try {
    if (!state.filter.state || state.filter.state === 'active') {
      const doc = await api('GET', '/v1/sessions?' + query({ 'filter[state]': 'active', 'page[size]': 1, 'fields[sessions]': '' }));
      open = doc.meta.total;
    }
  } catch (e) { toast('Could not count the sessions: ' + e.message); return; }
  if (open === 0) { toast('No open session matches ' + f); return; }
  const ok = await ask('Close ' + nf.format(open) + ' open ' + (open === 1 ? 'session' : 'sessions') + '?',
    'Every open session matching ' + f + ' ends now, including any opened since this count.', 'Close ' + nf.format(open));
  if (!ok) return;
  try {
    const doc = await api('DELETE', '/v1/sessions?' + query());
    toast('Closed ' + nf.format(doc.meta.closed) + (doc.meta.closed === 1 ? ' session' : ' sessions'));
  } catch (e) { toast('Close failed: ' + e.message); }
  refresh();
}

// ---- filters, paging and the address ----

// The filters, page and size live in the address's fragment (never a
// credential), so a view can be bookmarked and survives a reload.
function loadHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  state.filter = {};
  for (const k of FILTERS) if (q.get(k)) state.filter[k] = q.get(k);
  const size = Number(q.get('size'));
  state.size = [25, 50, 100, 250].includes(size) ? size : 50;
  state.page = Math.max(0, Math.floor(Number(q.get('page')) || 0));
  const form = $('filters');
  for (const k of FILTERS) form.elements[k].value = state.filter[k] || '';
  $('size').value = String(state.size);
}

function saveHash() {
  const q = new URLSearchParams();
  for (const k of FILTERS) if (state.filter[k]) q.set(k, state.filter[k]);
  if (state.page) q.set('page', state.page);
  if (state.size !== 50) q.set('size', state.size);
  const h = q.toString();
  history.replaceState(null, '', h ? '#' + h : location.pathname);
}

function readFilters() {
  const form = $('filters');
  const f = {};
  for (const k of FILTERS) { const v = form.elements[k].value.trim(); if (v) f[k] = v; }
  const any = Object.keys(f).length > 0;
  $('close-all').disabled = !any;
  $('close-all').title = any ? 'Close every open session these filters match' : 'Set a filter to close the sessions it matches';
  return f;
}

function applyFilters() {
  state.filter = readFilters();
  state.page = 0;
  state.seen = null;
  saveHash();
  skeleton();
  refresh();
}

function goPage(p) {
  state.page = p;
  state.seen = null;
  saveHash();
  // From the pager at the bottom, show the new page from its top.
  const card = document.querySelector('.card');
  if (card.getBoundingClientRect().top < 0) card.scrollIntoView({ block: 'start' });
  refresh();
}

function init() {
  loadHash();
  readFilters();
  let typing = 0;
  const form = $('filters');
  form.addEventListener('input', (e) => {
    clearTimeout(typing);
    typing = setTimeout(applyFilters, e.target.tagName === 'SELECT' ? 0 : 350);
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); clearTimeout(typing); applyFilters(); });
  form.addEventListener('reset', () => setTimeout(applyFilters, 0));
  $('close-all').addEventListener('click', confirmCloseAll);
  $('size').addEventListener('change', () => {
    const first = state.page * state.size;
    state.size = Number($('size').value);
    goPage(Math.floor(first / state.size));
  });
  $('first').addEventListener('click', () => goPage(0));
  $('prev').addEventListener('click', () => goPage(Math.max(0, state.page - 1)));
  $('next').addEventListener('click', () => goPage(state.page + 1));
  $('last').addEventListener('click', () => {
    const total = (state.doc && state.doc.meta && state.doc.meta.total) || 0;
    goPage(Math.max(0, Math.ceil(total / state.size) - 1));
  });
  $('live').addEventListener('click', () => setLive(!state.live));
  $('detail-close').addEventListener('click', closeDetail);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !$('confirm').open) closeDetail(); });
  document.addEventListener('visibilitychange', () => { if (!document.hidden && state.live) refresh(); });
  window.addEventListener('hashchange', () => { loadHash(); readFilters(); skeleton(); refresh(); });
  setInterval(tickIdle, 1000);
  skeleton();
  refresh();
}

init();
