// The audit explorer: a filter bar kept in the address (range, project,
// decision, reason, user, origin, session, split, cursor, detail, live), a
// stacked chart of decisions over time (GET /api/v1/audit/series), the top
// reasons and refused origins (GET /api/v1/audit/top), a table paged by
// cursor (GET /api/v1/audit/decisions), one decision's every field
// (GET /api/v1/audit/decisions/{id}), export links (/api/v1/audit/export)
// and a live view that polls.

import { api, url } from '../api.js';
import { byId, h, load, empty, table, outcomeBadge, loading, failure, fill } from '../dom.js';
import { num, pct, time, utc, localTime, clockTime } from '../format.js';
import { decisionFields, userCell } from '../decision.js';
import { start } from '../session.js';
import { modal } from '../dialog.js';
import { bucketTimes, matrix, stackedChart } from '../chart.js';

const PRESETS = { '15m': 15 * 60, '1h': 3600, '6h': 6 * 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 };
const REASONS = ['token_required', 'token_malformed', 'token_alg_not_allowed', 'token_bad_signature', 'token_expired', 'token_not_yet_valid',
  'token_missing_exp', 'token_invalid_claims', 'token_too_large', 'token_revoked', 'origin_not_allowed', 'origin_missing', 'unknown_project'];
const FILTERS = ['project', 'decision', 'reason', 'user', 'origin', 'session'];
// PAGE is the table's page size: shorter on a phone, where rows are cards.
const PAGE = matchMedia('(max-width: 760px)').matches ? 20 : 50;
const POLL_MS = 5000;

const form = byId('audit-filters');
const rangeSelect = byId('f-range');
const liveButton = byId('live-toggle');
let chart = null;
let liveTimer = null;
let seen = new Set();
let generation = 0;
// freshCount is how many decisions the live view's last check brought.
let freshCount = 0;

const me = await start();
if (me) {
  for (const r of REASONS) byId('f-reason').append(h('option', { value: r }, r));
  fillProjects();
  wire();
  readURL();
  refresh();
}

// state is the view the address holds.
function state() {
  const q = new URLSearchParams(location.search);
  const s = { range: q.get('range') || (q.get('since') ? 'custom' : '24h'), split: q.get('split') === 'reason' ? 'reason' : 'decision', cursor: q.get('cursor') || '', detail: q.get('detail') || '', live: q.get('live') === '1' };
  if (!PRESETS[s.range] && s.range !== 'custom') s.range = '24h';
  for (const f of FILTERS) s[f] = q.get(f) || '';
  s.since = q.get('since') || '';
  s.until = q.get('until') || '';
  return s;
}

// window is the time range a state stands for, now for a preset.
function windowOf(s) {
  if (s.range === 'custom') {
    const since = Date.parse(s.since);
    const until = s.until ? Date.parse(s.until) : Date.now();
    if (Number.isNaN(since) || Number.isNaN(until)) return null;
    return { since: new Date(since), until: new Date(until) };
  }
  const until = Math.ceil(Date.now() / 1000) * 1000;
  return { since: new Date(until - PRESETS[s.range] * 1000), until: new Date(until) };
}

function bucketOf(w) {
  const span = (w.until - w.since) / 1000;
  if (span <= 6 * 3600) return 'minute';
  if (span <= 8 * 86400) return 'hour';
  return 'day';
}

// filterOf is the API's query of a state and window.
function filterOf(s, w) {
  const f = { since: w.since.toISOString(), until: w.until.toISOString() };
  for (const k of FILTERS) if (s[k]) f[k] = s[k];
  return f;
}

// go changes the address (a new history entry unless replace) and shows it.
function go(changes, { replace = false, reload = true } = {}) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === '' || v === null || v === undefined || v === false) q.delete(k);
    else q.set(k, v === true ? '1' : v);
  }
  const next = `${location.pathname}${q.toString() ? `?${q}` : ''}`;
  if (replace) history.replaceState(null, '', next);
  else history.pushState(null, '', next);
  if (reload) {
    readURL();
    refresh();
  }
}

function toLocalInput(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// readURL puts the address's state into the filter bar.
function readURL() {
  const s = state();
  rangeSelect.value = s.range;
  const w = windowOf(s);
  if (w) {
    byId('f-since').value = toLocalInput(w.since);
    byId('f-until').value = toLocalInput(w.until);
  }
  showCustom(s.range === 'custom');
  for (const f of FILTERS) {
    const el = byId(`f-${f}`);
    if (el.tagName === 'SELECT' && s[f] && ![...el.options].some((o) => o.value === s[f])) el.append(h('option', { value: s[f] }, s[f]));
    el.value = s[f];
  }
  byId(`split-${s.split}`).checked = true;
  setLive(s.live, false);
}

function showCustom(on) {
  for (const el of document.querySelectorAll('[data-custom-range]')) el.hidden = !on;
}

function wire() {
  rangeSelect.addEventListener('change', () => showCustom(rangeSelect.value === 'custom'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const changes = { range: rangeSelect.value, cursor: '', detail: '' };
    if (rangeSelect.value === 'custom') {
      const since = byId('f-since').value;
      const until = byId('f-until').value;
      if (!since) {
        byId('f-since').setAttribute('aria-invalid', 'true');
        byId('f-since').focus();
        return;
      }
      byId('f-since').removeAttribute('aria-invalid');
      changes.since = new Date(since).toISOString();
      changes.until = until ? new Date(until).toISOString() : '';
      changes.live = '';
    } else {
      changes.since = '';
      changes.until = '';
    }
    for (const f of FILTERS) changes[f] = byId(`f-${f}`).value.trim();
    go(changes);
  });
  byId('filter-reset').addEventListener('click', () => {
    history.pushState(null, '', location.pathname);
    readURL();
    refresh();
  });
  for (const r of document.querySelectorAll('input[name="split"]')) {
    r.addEventListener('change', () => go({ split: r.value === 'reason' ? 'reason' : '' }, { replace: true }));
  }
  liveButton.addEventListener('click', () => {
    const on = liveButton.getAttribute('aria-pressed') !== 'true';
    if (on && state().range === 'custom') {
      byId('live-status').textContent = 'The live view follows a preset range (such as the last hour): pick one to watch new decisions arrive.';
      return;
    }
    go({ live: on, cursor: on ? '' : state().cursor }, { replace: true, reload: on && state().cursor !== '' });
    setLive(on, true);
  });
  window.addEventListener('popstate', () => {
    readURL();
    refresh();
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && liveButton.getAttribute('aria-pressed') === 'true') schedule(0);
  });
}

async function fillProjects() {
  try {
    const data = await api('/projects');
    const select = byId('f-project');
    const chosen = state().project;
    for (const p of data.projects) {
      if ([...select.options].some((o) => o.value === p.projectId)) {
        [...select.options].find((o) => o.value === p.projectId).textContent = `${p.name} (${p.projectId})`;
        continue;
      }
      select.append(h('option', { value: p.projectId }, `${p.name} (${p.projectId})`));
    }
    select.value = chosen;
  } catch {
    // The filter still takes the project of the address; the list is a convenience.
  }
}

// ---- Loading and showing ----

async function refresh({ quiet = false } = {}) {
  const gen = ++generation;
  const s = state();
  const w = windowOf(s);
  if (!w || w.until <= w.since) {
    for (const id of ['chart', 'top-reasons', 'top-origins', 'decisions', 'throttled']) empty(byId(id), 'Pick a valid time range.', '"From" must be before "Until".');
    fill(byId('totals'), );
    return;
  }
  const f = filterOf(s, w);
  const bucket = bucketOf(w);
  byId('export-csv').href = url('/audit/export', { ...f, format: 'csv' });
  byId('export-json').href = url('/audit/export', { ...f, format: 'json' });
  await Promise.all([
    showSeries(gen, f, w, bucket, s.split, quiet),
    showTopReasons(gen, f, quiet),
    showTopOrigins(gen, f, s, quiet),
    showDecisions(gen, f, s, quiet),
    showThrottled(gen, f, quiet),
  ]);
  if (gen === generation && s.detail) openDetail(s.detail);
  if (gen === generation && liveButton.getAttribute('aria-pressed') === 'true') {
    // Only news is announced (a live region); the time of the check is not.
    if (quiet && freshCount) byId('live-status').textContent = `${num(freshCount)} new decision${freshCount === 1 ? '' : 's'}.`;
    byId('live-checked').textContent = `Live: checked at ${clockTime(new Date())}; next check in ${POLL_MS / 1000} s.`;
    schedule(POLL_MS);
  }
}

// quietly loads data: in the live view an earlier view stays up while the
// next is read, and an error replaces it only if it persists.
async function fetchInto(el, what, quiet, gen, fn, render) {
  if (!quiet) return load(el, what, fn, (d) => gen === generation && render(d));
  try {
    const d = await fn();
    if (gen === generation) render(d);
  } catch (e) {
    if (gen === generation) failure(el, e, () => refresh());
  }
  return undefined;
}

function showSeries(gen, f, w, bucket, split, quiet) {
  const el = byId('chart');
  return fetchInto(el, 'Counting decisions…', quiet, gen, () => api('/audit/series', { query: { ...f, bucket, split } }), (s) => {
    if (chart) {
      chart.destroy();
      chart = null;
    }
    const x = bucketTimes(s.since, s.until, s.bucket);
    const m = matrix(s.points, x, split);
    const total = Object.values(m.totals).reduce((a, b) => a + b, 0);
    const accepted = split === 'decision' ? m.totals.accept || 0 : m.totals['(accept)'] || 0;
    const refused = total - accepted;
    fill(byId('totals'),
      stat('Decisions', num(total), 'total-decisions'),
      stat('Accepted', num(accepted), 'total-accepted'),
      stat('Refused', num(refused), 'total-refused'),
      stat('Refusal rate', total ? pct(refused / total) : '—', 'total-refusal-rate'),
      stat('Per bar', bucket, 'bucket'),
    );
    if (!total) {
      empty(el, 'No decisions in this range.', 'Widen the time range or clear filters. If there are none at all yet, embed the widget on your site — ',
        h('code', {}, '<script src="https://YOUR-INGRESS/widget.js"></script>'), ' and ', h('code', {}, 'Hissuno.init({ projectId: "…" })'), ' — and every connection shows up here.');
      fill(byId('chart-table'), );
      return;
    }
    const label = `Decisions per ${bucket} from ${localTime(w.since)} to ${localTime(w.until)}, stacked by ${split === 'reason' ? 'reason' : 'outcome'}: ` +
      m.keys.map((k) => `${k} ${num(m.totals[k])}`).join(', ') + '.';
    chart = stackedChart(el, { x, keys: m.keys, values: m.values, bucket, label });
    chartTable(x, m);
  });
}

function stat(label, value, testid) {
  return h('div', { class: 'total' }, h('span', { class: 'total-value', testid }, value), h('span', { class: 'total-label' }, label));
}

// chartTable is the chart's numbers, for those who cannot see it: the
// buckets holding decisions.
function chartTable(x, m) {
  const rows = x.map((t, i) => ({ t, i })).filter(({ i }) => m.keys.some((k) => m.values[k][i] > 0));
  fill(byId('chart-table'), table({
    caption: 'Decisions per bucket',
    testid: 'chart-numbers',
    rows,
    columns: [
      { label: 'Bucket start', cell: ({ t }) => time(new Date(t * 1000)) },
      ...m.keys.map((k) => ({ label: k, num: true, cell: ({ i }) => num(m.values[k][i]) })),
      { label: 'Total', num: true, cell: ({ i }) => num(m.keys.reduce((a, k) => a + m.values[k][i], 0)) },
    ],
  }));
}

function bars(items, { filterKey, testid, emptyTitle, emptyHint }) {
  if (!items.length) {
    const el = h('div');
    empty(el, emptyTitle, emptyHint);
    return el;
  }
  const max = Math.max(...items.map((i) => i.count));
  return h('ul', { class: 'bars', testid }, items.map((it, n) => h('li', { dataset: { testid: 'top-item', key: it.key } },
    h('span', { class: 'bar-key' }, filterKey && !it.key.startsWith('(')
      ? h('button', { type: 'button', class: 'link-button', title: `Filter on ${filterKey} ${it.key}`, onclick: () => go({ [filterKey]: it.key, cursor: '' }) }, it.key)
      : it.key),
    h('span', { class: 'bar-count' }, num(it.count)),
    h('meter', { min: 0, max, value: it.count, 'aria-label': `${it.key}: ${num(it.count)}`, class: `meter-${n}` }),
  )));
}

function showTopReasons(gen, f, quiet) {
  const el = byId('top-reasons');
  return fetchInto(el, 'Counting reasons…', quiet, gen, () => api('/audit/top', { query: { ...f, by: 'reason', n: 10 } }), (t) => {
    fill(el, bars(t.items, { filterKey: 'reason', testid: 'top-reasons-list', emptyTitle: 'No decisions in this range.', emptyHint: 'Widen the time range or clear filters.' }));
  });
}

// showTopOrigins counts the origins of refusals: the decision filter's
// when it is a refusal, else every refusal.
function showTopOrigins(gen, f, s, quiet) {
  const el = byId('top-origins');
  if (s.decision === 'accept') {
    empty(el, 'The filter shows accepts only.', 'Clear the decision filter to see the origins of refusals.');
    return Promise.resolve();
  }
  // Without a decision filter, every refusal (decision=refused), exactly.
  const fetchTop = async () => (await api('/audit/top', { query: { ...f, decision: s.decision || 'refused', by: 'origin', n: 10 } })).items;
  return fetchInto(el, 'Counting origins…', quiet, gen, fetchTop, (items) => {
    fill(el, bars(items, { filterKey: 'origin', testid: 'top-origins-list', emptyTitle: 'No refusals in this range.', emptyHint: 'Every connection matching the filters was accepted.' }));
  });
}

const COLUMNS = [
  { label: 'Time', cell: (d) => time(d.time), class: 'nowrap' },
  { label: 'Project', cell: (d) => h('code', {}, d.projectId || '—') },
  { label: 'Decision', cell: (d) => outcomeBadge(d.decision) },
  { label: 'Reason', cell: (d) => (d.reason ? h('code', {}, d.reason) : h('span', { class: 'subtle' }, '—')) },
  { label: 'User', cell: userCell },
  { label: 'Origin', cell: (d) => d.origin || h('span', { class: 'subtle' }, '(none)') },
  { label: 'Session', cell: (d) => d.session || '—' },
  { label: '', cell: (d) => h('button', { type: 'button', class: 'button button-small', 'aria-label': `Details of the decision at ${utc(d.time)}`, testid: 'decision-details', onclick: () => showDetail(d.decisionId) }, 'Details') },
];

function showDecisions(gen, f, s, quiet) {
  const el = byId('decisions');
  const pager = byId('decisions-pager');
  return fetchInto(el, 'Loading decisions…', quiet, gen, () => api('/audit/decisions', { query: { ...f, limit: PAGE, cursor: s.cursor } }), (page) => {
    const fresh = quiet ? page.records.filter((d) => !seen.has(d.decisionId)).length : 0;
    if (!page.records.length) {
      empty(el, s.cursor ? 'No older decisions.' : 'No decisions match.', s.cursor ? 'This was the last page.' : 'Widen the time range or clear filters.');
    } else {
      fill(el, table({
        caption: 'Decisions, newest first',
        testid: 'decisions-table',
        rows: page.records,
        columns: COLUMNS,
        rowAttrs: (d) => ({ class: quiet && !seen.has(d.decisionId) ? 'fresh' : null, dataset: { testid: 'decision-row', decisionId: d.decisionId, decision: d.decision } }),
      }));
    }
    seen = new Set(page.records.map((d) => d.decisionId));
    fill(pager,
      s.cursor ? h('button', { type: 'button', class: 'button', testid: 'page-newest', onclick: () => go({ cursor: '' }) }, '← Newest') : null,
      page.next ? h('button', { type: 'button', class: 'button', testid: 'page-older', onclick: () => go({ cursor: page.next, live: '' }) }, 'Older decisions →') : null,
    );
    freshCount = fresh;
  });
}

// ---- Throttled traffic ----

const THROTTLED_COLUMNS = [
  { label: 'Minute', cell: (t) => time(t.time), class: 'nowrap' },
  { label: 'Project', cell: (t) => (t.overflow ? h('span', { class: 'subtle' }, '(overflow)') : h('code', {}, t.projectId)) },
  { label: 'Client IP', cell: (t) => (t.overflow ? h('span', { class: 'subtle' }, '(overflow)') : h('code', {}, t.clientIp || '—')) },
  { label: 'Reason', cell: (t) => h('code', {}, t.reason) },
  { label: 'Requests', cell: (t) => num(t.count), num: true },
];

// showThrottled shows what the ingresses refused in the range (and
// project): the totals by reason and the largest counts.
function showThrottled(gen, f, quiet) {
  const el = byId('throttled');
  const query = { since: f.since, until: f.until, limit: 20 };
  if (f.project) query.project = f.project;
  return fetchInto(el, 'Counting throttled requests…', quiet, gen, () => api('/audit/throttled', { query }), (d) => {
    if (!d.total) {
      empty(el, 'No throttled requests in this range.', 'Requests over a rate limit would show here, counted per minute.');
      return;
    }
    fill(el,
      h('p', { testid: 'throttled-totals' }, `${num(d.total)} request${d.total === 1 ? '' : 's'} refused: `,
        d.byReason.map((r, i) => [i ? ', ' : '', h('code', {}, r.key), ` ${num(r.count)}`])),
      table({ caption: 'Throttled requests, newest minute first', testid: 'throttled-table', rows: d.items, columns: THROTTLED_COLUMNS,
        rowAttrs: () => ({ dataset: { testid: 'throttled-row' } }) }),
    );
  });
}

// ---- One decision ----

let detailOpen = false;

// showDetail opens a decision and keeps it in the address, to share.
function showDetail(id) {
  go({ detail: id }, { replace: true, reload: false });
  openDetail(id);
}

async function openDetail(id) {
  if (detailOpen) return;
  detailOpen = true;
  const body = h('div', { testid: 'decision-detail' });
  const m = modal({ title: 'Decision', testid: 'decision-dialog', body: [body] });
  m.closed.then(() => {
    detailOpen = false;
    if (state().detail) go({ detail: '' }, { replace: true, reload: false });
  });
  const stop = loading(body, 'Loading the decision…');
  try {
    const d = await api(`/audit/decisions/${encodeURIComponent(id)}`);
    stop();
    fill(body, decisionFields(d),
    h('p', { class: 'actions' },
      d.userId ? h('button', { type: 'button', class: 'button button-small', onclick: () => { m.close(); go({ user: d.userId, detail: '', cursor: '' }); } }, 'Decisions of this user') : null,
      d.origin ? h('button', { type: 'button', class: 'button button-small', onclick: () => { m.close(); go({ origin: d.origin, detail: '', cursor: '' }); } }, 'Decisions from this origin') : null));
  } catch (e) {
    stop();
    failure(body, e);
  }
}

// ---- Live view ----

function setLive(on, announce) {
  liveButton.setAttribute('aria-pressed', String(on));
  liveButton.textContent = on ? 'Live view: on' : 'Live view: off';
  if (!on) {
    clearTimeout(liveTimer);
    liveTimer = null;
    byId('live-checked').textContent = '';
    if (announce) byId('live-status').textContent = 'Live view off.';
  } else if (announce) {
    byId('live-status').textContent = `Live: checking for new decisions every ${POLL_MS / 1000} s.`;
    schedule(0);
  }
}

function schedule(ms) {
  clearTimeout(liveTimer);
  liveTimer = setTimeout(() => {
    if (document.hidden || liveButton.getAttribute('aria-pressed') !== 'true') return;
    refresh({ quiet: true });
  }, ms);
}
