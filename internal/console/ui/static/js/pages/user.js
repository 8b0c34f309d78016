// One user's connection history on a project
// (GET /api/v1/projects/{id}/users/{userId}/decisions), newest first, a
// page at a time; each decision's every field in a dialog.

import { api } from '../api.js';
import { byId, h, load, empty, table, outcomeBadge, fill } from '../dom.js';
import { time, utc } from '../format.js';
import { start } from '../session.js';
import { modal } from '../dialog.js';
import { decisionFields } from '../decision.js';

const id = document.body.dataset.projectId;
const userId = document.body.dataset.userId;
const base = `/projects/${encodeURIComponent(id)}`;

const me = await start();
if (me) {
  api(base).then((p) => {
    for (const el of document.querySelectorAll('.project-name')) el.textContent = p.name || p.projectId;
  }, () => {});
  document.title = `${userId} · Users · Hissuno console`;
  window.addEventListener('popstate', show);
  show();
}

function go(cursor) {
  const q = new URLSearchParams(location.search);
  if (cursor) q.set('cursor', cursor);
  else q.delete('cursor');
  history.pushState(null, '', `${location.pathname}${q.toString() ? `?${q}` : ''}`);
  show();
}

function show() {
  const cursor = new URLSearchParams(location.search).get('cursor') || '';
  const list = byId('history');
  const pager = byId('history-pager');
  fill(pager, );
  load(list, 'Loading the history…', () => api(`${base}/users/${encodeURIComponent(userId)}/decisions`, { query: { limit: 50, cursor } }), (page) => {
    if (!page.records.length) {
      empty(list, cursor ? 'No older connections.' : 'No connections of this user in the last 30 days.',
        cursor ? '' : 'A user shows up once the widget connects with a token naming them (or, anonymously, with this userId).');
    } else {
      fill(list, table({
        caption: `Connections of ${userId}, newest first`,
        testid: 'history-table',
        rows: page.records,
        rowAttrs: (d) => ({ dataset: { testid: 'decision-row', decisionId: d.decisionId, decision: d.decision } }),
        columns: [
          { label: 'Time', cell: (d) => time(d.time), class: 'nowrap' },
          { label: 'Decision', cell: (d) => outcomeBadge(d.decision) },
          { label: 'Reason', cell: (d) => (d.reason ? h('code', {}, d.reason) : h('span', { class: 'subtle' }, '—')) },
          { label: 'Session', cell: (d) => d.session || '—' },
          { label: 'Origin', cell: (d) => d.origin || h('span', { class: 'subtle' }, '(none)') },
          { label: 'Key', cell: (d) => (d.keyVersion ? `v${d.keyVersion}` : '—') },
          { label: 'Client IP', cell: (d) => d.clientIp || '—' },
          { label: '', cell: (d) => h('button', { type: 'button', class: 'button button-small', 'aria-label': `Details of the decision at ${utc(d.time)}`, testid: 'decision-details', onclick: () => modal({ title: 'Decision', testid: 'decision-dialog', body: [decisionFields(d)] }) }, 'Details') },
        ],
      }));
    }
    fill(pager,
      cursor ? h('button', { type: 'button', class: 'button', testid: 'page-newest', onclick: () => go('') }, '← Newest') : null,
      page.next ? h('button', { type: 'button', class: 'button', testid: 'page-older', onclick: () => go(page.next) }, 'Older connections →') : null,
    );
  });
}
