// Admin events (GET /api/v1/audit/admin-events): who changed what and
// when, with the verified actor and the reason; sign-ins, failures,
// lockouts and refusals. The filters and the cursor are kept in the
// address.

import { api } from '../api.js';
import { byId, h, load, empty, table, badge, kv, fill } from '../dom.js';
import { num, time, utc, duration } from '../format.js';
import { start } from '../session.js';
import { modal } from '../dialog.js';

const RANGES = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400, '90d': 90 * 86400 };
const FILTERS = ['kind', 'project', 'actor', 'user'];
const form = byId('event-filters');

const me = await start();
if (me) {
  fillProjects();
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const changes = { range: byId('e-range').value === '30d' ? '' : byId('e-range').value, cursor: '' };
    for (const f of FILTERS) changes[f] = byId(`e-${f}`).value.trim();
    go(changes);
  });
  byId('event-filter-reset').addEventListener('click', () => {
    history.pushState(null, '', location.pathname);
    show();
  });
  window.addEventListener('popstate', show);
  show();
}

function params() {
  const q = new URLSearchParams(location.search);
  const s = { range: RANGES[q.get('range')] ? q.get('range') : '30d', cursor: q.get('cursor') || '' };
  for (const f of FILTERS) s[f] = q.get(f) || '';
  return s;
}

function go(changes) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v) q.set(k, v);
    else q.delete(k);
  }
  history.pushState(null, '', `${location.pathname}${q.toString() ? `?${q}` : ''}`);
  show();
}

async function fillProjects() {
  try {
    const data = await api('/projects');
    const select = byId('e-project');
    for (const p of data.projects) {
      if (![...select.options].some((o) => o.value === p.projectId)) select.append(h('option', { value: p.projectId }, `${p.name} (${p.projectId})`));
    }
    select.value = params().project;
  } catch {
    // The filter still takes the project of the address.
  }
}

const DANGER = new Set(['account.sign_in_failed', 'account.locked', 'account.access_denied', 'token.revoked', 'user.revoked']);
const OK = new Set(['account.signed_in', 'project.created', 'token.created', 'account.created']);

function kindBadge(kind) {
  return badge(kind, DANGER.has(kind) ? 'danger' : OK.has(kind) ? 'ok' : kind === 'key.rotated' ? 'warn' : 'info');
}

// subject is what an event is about, in a few words.
function subject(e) {
  switch (e.kind) {
    case 'key.rotated':
      return `key v${e.previousKeyVersion} → v${e.keyVersion}${e.graceSeconds ? `, previous key for ${duration(e.graceSeconds)}` : ', previous key stopped at once'}`;
    case 'user.revoked':
    case 'user.unrevoked':
      return `user ${e.userId}`;
    case 'project.created':
    case 'project.updated':
      return [e.name, e.requireToken ? 'token required' : 'token not required', e.origins && e.origins.length ? `${num(e.origins.length)} origins` : 'every origin'].filter(Boolean).join(', ');
    default:
      return e.account || '';
  }
}

function show() {
  const s = params();
  byId('e-range').value = s.range;
  for (const f of FILTERS) {
    const el = byId(`e-${f}`);
    if (el.tagName === 'SELECT' && s[f] && ![...el.options].some((o) => o.value === s[f])) el.append(h('option', { value: s[f] }, s[f]));
    el.value = s[f];
  }
  const since = new Date(Date.now() - RANGES[s.range] * 1000).toISOString();
  const query = { since, limit: 50, cursor: s.cursor };
  for (const f of FILTERS) if (s[f]) query[f] = s[f];
  const list = byId('events');
  const pager = byId('events-pager');
  fill(pager, );
  load(list, 'Loading admin events…', () => api('/audit/admin-events', { query }), (page) => {
    if (!page.events.length) {
      empty(list, s.cursor ? 'No older events.' : 'No admin events match.', s.cursor ? '' : 'Widen the time range or clear filters. Every project change, key rotation, revocation and sign-in is recorded here.');
    } else {
      fill(list, table({
        caption: 'Admin events, newest first',
        testid: 'events-table',
        rows: page.events,
        rowAttrs: (e) => ({ dataset: { testid: 'event-row', eventId: e.eventId, kind: e.kind } }),
        columns: [
          { label: 'Time', cell: (e) => time(e.time), class: 'nowrap' },
          { label: 'Kind', cell: (e) => kindBadge(e.kind), class: 'nowrap' },
          { label: 'Actor', cell: (e) => h('code', { testid: 'event-actor' }, e.actor) },
          { label: 'Project', cell: (e) => (e.projectId ? h('code', {}, e.projectId) : h('span', { class: 'subtle' }, '—')) },
          { label: 'What', cell: (e) => subject(e) || h('span', { class: 'subtle' }, '—') },
          { label: 'Reason', cell: (e) => e.reason || h('span', { class: 'subtle' }, '—') },
          { label: 'Client IP', cell: (e) => e.clientIp || h('span', { class: 'subtle' }, '—'), class: 'nowrap' },
          { label: '', cell: (e) => h('button', { type: 'button', class: 'button button-small', 'aria-label': `Details of the ${e.kind} event at ${utc(e.time)}`, testid: 'event-details', onclick: () => detail(e) }, 'Details') },
        ],
      }));
    }
    fill(pager,
      s.cursor ? h('button', { type: 'button', class: 'button', testid: 'page-newest', onclick: () => go({ cursor: '' }) }, '← Newest') : null,
      page.next ? h('button', { type: 'button', class: 'button', testid: 'page-older', onclick: () => go({ cursor: page.next }) }, 'Older events →') : null,
    );
  });
}

function detail(e) {
  modal({
    title: e.kind,
    testid: 'event-dialog',
    body: [kv(eventFields(e).filter(([k, v]) => ALWAYS.has(k) || (v !== '' && v !== undefined && v !== null)), 'event-fields')],
  });
}

// ALWAYS are the fields an event's detail shows even when empty; the
// others show only when the kind of event fills them.
const ALWAYS = new Set(['Time', 'Kind', 'Actor', 'Reason', 'Event id']);

function eventFields(e) {
  return [
    ['Time', h('span', {}, time(e.time), ' ', h('span', { class: 'subtle' }, `(${utc(e.time)})`))],
    ['Kind', kindBadge(e.kind)],
    ['Actor', h('code', {}, e.actor)],
    ['Reason', e.reason],
    ['Project', e.projectId ? h('code', {}, e.projectId) : ''],
    ['Name', e.name],
    ['Require widget token', e.kind.startsWith('project.') ? (e.requireToken ? 'on' : 'off') : ''],
    ['Origins', e.origins && e.origins.length ? h('ul', { class: 'meta' }, e.origins.map((o) => h('li', {}, h('code', {}, o)))) : ''],
    ['Key version', e.keyVersion ? `v${e.keyVersion}` : ''],
    ['Previous key version', e.previousKeyVersion ? `v${e.previousKeyVersion}` : ''],
    ['Key fingerprint', e.keyFingerprint ? h('code', {}, e.keyFingerprint) : ''],
    ['Grace', e.kind === 'key.rotated' ? (e.graceSeconds ? duration(e.graceSeconds) : 'none: the previous key stopped at once') : ''],
    ['Grace until', e.graceUntil ? time(e.graceUntil) : ''],
    ['User id', e.userId],
    ['Revoked before', e.revokedBefore ? time(e.revokedBefore) : ''],
    ['Account', e.account],
    ['Client IP', e.clientIp],
    ['User agent', e.userAgent],
    ['Revision', e.revision ? num(e.revision) : ''],
    ['Event id', h('code', {}, e.eventId)],
    ['Command id', e.commandId ? h('code', {}, e.commandId) : ''],
  ];
}
