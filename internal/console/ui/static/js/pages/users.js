// A project's users (GET /api/v1/projects/{id}/users): identified users
// with their metadata and when they were last seen, anonymous visitors
// counted apart, as the docs' "Dashboard visibility" says. The range and
// the page's cursor are kept in the address.

import { api } from '../api.js';
import { byId, h, load, empty, table, fill } from '../dom.js';
import { num, time } from '../format.js';
import { start } from '../session.js';

const RANGES = { '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400, '90d': 90 * 86400 };
const id = document.body.dataset.projectId;
const base = `/projects/${encodeURIComponent(id)}`;
const rangeSelect = byId('users-range');

const me = await start();
if (me) {
  api(base).then((p) => {
    for (const el of document.querySelectorAll('.project-name')) el.textContent = p.name || p.projectId;
    document.title = `Users of ${p.name || p.projectId} · Hissuno console`;
  }, () => {});
  rangeSelect.addEventListener('change', () => go({ range: rangeSelect.value === '30d' ? '' : rangeSelect.value, cursor: '' }));
  window.addEventListener('popstate', show);
  show();
}

function params() {
  const q = new URLSearchParams(location.search);
  const range = RANGES[q.get('range')] ? q.get('range') : '30d';
  return { range, cursor: q.get('cursor') || '' };
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

function show() {
  const { range, cursor } = params();
  rangeSelect.value = range;
  const since = new Date(Date.now() - RANGES[range] * 1000).toISOString();
  const list = byId('users');
  const anon = byId('anonymous');
  const pager = byId('users-pager');
  fill(pager, );
  // One request for both parts; a retry after a failure asks again.
  let pending = null;
  const data = () => {
    pending ??= api(`${base}/users`, { query: { since, limit: 50, cursor } }).catch((e) => {
      pending = null;
      throw e;
    });
    return pending;
  };
  load(anon, 'Counting anonymous visitors…', data, (u) => {
    const a = u.anonymous;
    fill(anon,
      h('p', { testid: 'anonymous-count' }, h('strong', {}, num(a.connections)), ` anonymous connection${a.connections === 1 ? '' : 's'} from about `,
        h('strong', {}, num(a.visitors)), ` visitor${a.visitors === 1 ? '' : 's'} in ${rangeSelect.selectedOptions[0].textContent}.`),
      h('p', { class: 'hint' }, 'Visitors are counted by client address and browser: a userId sent without a token is only a claim, so it is not used. Require widget token to identify everyone.'));
  });
  load(list, 'Loading users…', data, (u) => {
    if (!u.users.length) {
      empty(list, cursor ? 'No more users.' : 'No identified users yet.', cursor ? '' : [
        'Users appear here once your backend signs widget tokens with the project\'s Secret Key and the widget passes them: the token\'s ',
        h('code', {}, 'userId'), ' and ', h('code', {}, 'userMetadata'), ' are shown. ',
        h('a', { href: `${base}/security` }, 'Settings › Widget › Security'), ' has the key\'s version and the Require widget token switch.']);
    } else {
      fill(list, table({
        caption: 'Identified users, last seen first',
        testid: 'users-table',
        rows: u.users,
        rowAttrs: (r) => ({ dataset: { testid: 'user-row', userId: r.userId } }),
        columns: [
          { label: 'User id', cell: (r) => h('a', { href: `${base}/users/${encodeURIComponent(r.userId)}`, testid: 'user-link' }, r.userId) },
          { label: 'Metadata', cell: metadata },
          { label: 'First seen', cell: (r) => time(r.firstSeen) },
          { label: 'Last seen', cell: (r) => time(r.lastSeen) },
          { label: 'Connections', num: true, cell: (r) => num(r.connections) },
        ],
      }));
    }
    fill(pager,
      cursor ? h('button', { type: 'button', class: 'button', testid: 'page-newest', onclick: () => go({ cursor: '' }) }, '← Most recent') : null,
      u.next ? h('button', { type: 'button', class: 'button', testid: 'page-older', onclick: () => go({ cursor: u.next }) }, 'More users →') : null,
    );
  });
}

function metadata(r) {
  const entries = Object.entries(r.metadata || {});
  if (!entries.length) return h('span', { class: 'subtle' }, 'none');
  return h('ul', { class: 'meta' }, entries.map(([k, v]) => h('li', {}, h('strong', {}, `${k}: `), v)));
}
