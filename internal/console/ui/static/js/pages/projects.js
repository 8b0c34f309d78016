// Projects: every project the account may see (GET /api/v1/projects) with
// its settings at a glance and a sparkline of its last 24 h of decisions
// (GET /api/v1/audit/series?project=…&bucket=hour); creating one
// (POST /api/v1/projects) shows its secret key once.

import { api } from '../api.js';
import { byId, h, load, empty, notice, table, badge, field, fill } from '../dom.js';
import { num, pct } from '../format.js';
import { start, can } from '../session.js';
import { formDialog, secretDialog } from '../dialog.js';
import { bucketTimes, sparkline } from '../chart.js';

const list = byId('projects');
const me = await start();
if (me) {
  refresh();
  const create = document.getElementById('create-project');
  if (create) create.addEventListener('click', createProject);
}

function refresh() {
  load(list, 'Loading projects…', () => api('/projects'), render);
}

function render(data) {
  const auditNotice = byId('audit-notice');
  fill(auditNotice, );
  if (data.auditError) {
    auditNotice.append(notice('warn', h('strong', {}, 'The audit is not reachable: '), data.auditError, '. Settings are shown; the decisions of the last 24 hours are not.'));
  }
  if (!data.projects.length) {
    const hint = can('projects:create')
      ? ['Create one with ', h('strong', {}, 'Create project'), ', or from a shell: ', h('code', {}, 'hissuno project create --name "My shop" --require-token --origin https://myshop.example'), '.']
      : ['An admin or owner creates projects; ask one to create yours, or to give your account access to it.'];
    empty(list, 'No projects yet.', hint);
    return;
  }
  const sparks = [];
  fill(list, table({
    caption: 'Projects',
    testid: 'projects-table',
    rows: data.projects,
    rowAttrs: (p) => ({ dataset: { testid: 'project-row', projectId: p.projectId } }),
    columns: [
      { label: 'Name', cell: (p) => h('a', { href: `/projects/${encodeURIComponent(p.projectId)}/security`, testid: 'project-link' }, p.name || p.projectId) },
      { label: 'Project id', cell: (p) => h('code', { testid: 'project-id' }, p.projectId) },
      { label: 'Require widget token', cell: (p) => (p.requireToken ? badge('On', 'ok') : badge('Off', 'warn')) },
      { label: 'Origins', num: true, cell: (p) => (p.origins.length ? h('span', { title: p.origins.join('\n') }, num(p.origins.length)) : h('span', { title: 'The list is empty: every origin is permitted' }, 'any')) },
      { label: 'Key version', num: true, cell: (p) => `v${p.keyVersion}` },
      {
        label: 'Last 24 h',
        cell: (p) => {
          if (!p.last24h) return h('span', { class: 'subtle', title: 'The audit is not reachable' }, 'not available');
          const box = h('span', { class: 'sparkline', 'aria-hidden': 'true' });
          if (p.last24h.decisions > 0) sparks.push([p, box]);
          return h('span', { class: 'spark-cell' }, p.last24h.decisions > 0 ? box : null, h('span', { testid: 'decisions-24h' }, `${num(p.last24h.decisions)} decision${p.last24h.decisions === 1 ? '' : 's'}`));
        },
      },
      {
        label: 'Refusal rate',
        num: true,
        cell: (p) => {
          if (!p.last24h || !p.last24h.decisions) return h('span', { class: 'subtle', testid: 'refusal-rate', title: 'No decisions in the last 24 hours' }, '—');
          return h('span', { title: `${num(p.last24h.refused)} refused of ${num(p.last24h.decisions)}`, testid: 'refusal-rate' }, pct(p.last24h.refusalRate));
        },
      },
      {
        label: 'More',
        cell: (p) => h('span', { class: 'actions' },
          h('a', { href: `/projects/${encodeURIComponent(p.projectId)}/users` }, 'Users'),
          h('a', { href: `/audit?project=${encodeURIComponent(p.projectId)}` }, 'Audit')),
      },
    ],
  }));
  drawSparklines(sparks);
}

// drawSparklines fetches each project's series, four at a time.
async function drawSparklines(queue) {
  const work = async () => {
    while (queue.length) {
      const [p, box] = queue.shift();
      try {
        const s = await api('/audit/series', { query: { project: p.projectId, bucket: 'hour' } });
        const x = bucketTimes(s.since, s.until, 'hour');
        const total = new Array(x.length).fill(0);
        const refused = new Array(x.length).fill(0);
        const at = new Map(x.map((t, i) => [t, i]));
        for (const pt of s.points) {
          const i = at.get(Math.floor(Date.parse(pt.time) / 1000));
          if (i === undefined) continue;
          total[i] += pt.count;
          if (pt.key !== 'accept') refused[i] += pt.count;
        }
        sparkline(box, x, total, refused);
      } catch {
        fill(box, );
      }
    }
  };
  await Promise.all([work(), work(), work(), work()]);
}

async function createProject() {
  const result = await formDialog({
    title: 'Create a project',
    testid: 'create-project-dialog',
    submitLabel: 'Create project',
    fields: [
      field('new-project-name', 'Name', h('input', { id: 'new-project-name', name: 'name', type: 'text', required: true, maxlength: 200, autocomplete: 'off', testid: 'new-project-name' })),
      field('new-project-id', ['Project id ', h('span', { class: 'optional' }, '(optional)')], h('input', { id: 'new-project-id', name: 'projectId', type: 'text', maxlength: 64, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'new-project-id-hint', testid: 'new-project-id' }),
        'What widgets send as projectId: 1 to 64 letters, digits, - or _. Default: a random proj_… id.', 'new-project-id-hint'),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'requireToken', value: 'on', testid: 'new-project-require-token' }), h('span', {}, h('strong', {}, 'Require widget token'), ' — refuse widgets without a valid token. Turn it on before going live; you can do it later.')),
      field('new-project-origins', ['Allowed origins ', h('span', { class: 'optional' }, '(one a line; none allows every origin)')], h('textarea', { id: 'new-project-origins', name: 'origins', rows: 3, spellcheck: 'false', placeholder: 'https://myapp.com\n*.myapp.com', 'aria-describedby': 'new-project-origins-hint', testid: 'new-project-origins' }),
        'Exact origins such as https://myapp.com, or wildcards such as *.myapp.com for every subdomain.', 'new-project-origins-hint'),
      field('new-project-reason', ['Reason ', h('span', { class: 'optional' }, '(optional, shown in the audit)')], h('input', { id: 'new-project-reason', name: 'reason', type: 'text', maxlength: 1000, autocomplete: 'off', testid: 'new-project-reason' })),
    ],
    onSubmit: async (d) => {
      if (!d.name.trim()) throw new Error('A project needs a name.');
      const body = { name: d.name.trim(), requireToken: d.requireToken === 'on' };
      if (d.projectId.trim()) body.projectId = d.projectId.trim();
      const origins = d.origins.split(/\s+/).map((s) => s.trim()).filter(Boolean);
      if (origins.length) body.origins = origins;
      if (d.reason.trim()) body.reason = d.reason.trim();
      return api('/projects', { method: 'POST', body });
    },
  });
  if (!result) return;
  await showNewKey(result);
  refresh();
}

// showNewKey shows a new project's key, this once.
function showNewKey(result) {
  const p = result.project;
  const unconfirmed = result.unconfirmed || [];
  return secretDialog({
    title: `Copy your Secret Key — ${p.name}`,
    testid: 'secret-key-dialog',
    label: 'Secret Key',
    secret: result.secretKey,
    warning: [
      h('p', {}, h('strong', {}, 'Never expose it in client-side code.'), ' Store it in an environment variable of your backend (HISSUNO_SECRET_KEY), never in source control; your backend signs widget tokens with it.'),
      h('p', {}, 'This is the only time it is shown: the console keeps no readable copy. If you lose it, rotate the key.'),
    ],
    extra: [
      h('p', {}, 'Project id ', h('code', { testid: 'new-project-id-value' }, p.projectId), '. ', h('a', { href: `/projects/${encodeURIComponent(p.projectId)}/security` }, 'Open Settings › Widget › Security')),
      unconfirmed.length ? notice('warn', `These verifiers did not confirm the new project yet, and refuse its widgets until they catch up: ${unconfirmed.join(', ')}.`) : null,
    ],
  });
}
