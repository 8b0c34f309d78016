// Project › Settings › Widget › Security, as the product docs name it:
// Require widget token (with a preview from the audit before switching it
// on), the secret key's version and fingerprint, allowed origins and an
// origin tester, key rotation, and revoked users. Every read and change
// goes through /api/v1/projects/{id}….

import { api } from '../api.js';
import { byId, h, load, empty, notice, table, badge, setError, busy, field, optional, kv, fill } from '../dom.js';
import { num, time, duration, localTime } from '../format.js';
import { start, can } from '../session.js';
import { formDialog, secretDialog, confirmDialog } from '../dialog.js';

const id = document.body.dataset.projectId;
const base = `/projects/${encodeURIComponent(id)}`;
let project = null;

const me = await start();
if (me) {
  const ok = await load(byId('project-state'), 'Loading the project…', () => api(base), (p) => {
    fill(byId('project-state'), );
    byId('project-sections').hidden = false;
    show(p);
  });
  if (ok) {
    wireRequireToken();
    wireOrigins();
    wireRotate();
    wireRevocations();
    loadRevocations();
  }
}

// show renders the project's settings.
function show(p) {
  project = p;
  for (const el of document.querySelectorAll('.project-name')) el.textContent = p.name || p.projectId;
  document.title = `${p.name || p.projectId} · Settings › Widget › Security · Hissuno console`;
  showRequireToken();
  showKeys();
  showOrigins();
}

// confirmations says which verifiers hold a change, and names those that
// do not (they refuse the project's widgets until they catch up).
function confirmations(result, what) {
  const confirmed = result.confirmed || [];
  const unconfirmed = result.unconfirmed || [];
  const parts = [h('p', {}, h('strong', {}, what), result.alreadyApplied ? ' (it had been applied already)' : '')];
  parts.push(h('p', { testid: 'confirmed' }, confirmed.length
    ? `Confirmed by ${num(confirmed.length)} verifier${confirmed.length === 1 ? '' : 's'}: ${confirmed.join(', ')}.`
    : 'No verifier confirmed it.'));
  if (unconfirmed.length) {
    parts.push(h('p', { testid: 'unconfirmed' }, `Not confirmed in time: ${unconfirmed.join(', ')}. They refuse this project's widgets until they catch up; check their health (/readyz).`));
  }
  return notice(unconfirmed.length ? 'warn' : 'ok', parts);
}

function showResult(result, what) {
  const el = byId('change-result');
  fill(el, confirmations(result, what));
  el.scrollIntoView({ block: 'nearest' });
}

// ---- Require widget token ----

function showRequireToken() {
  const on = project.requireToken;
  const sw = document.getElementById('require-token-switch');
  if (sw) {
    sw.setAttribute('aria-checked', String(on));
    byId('require-token-label').textContent = on ? 'On' : 'Off';
  }
  // The switch says On or Off itself; without it (a read-only role) a
  // badge does.
  const state = sw ? null : badge(on ? 'On' : 'Off', on ? 'ok' : 'warn');
  fill(byId('require-token-status'), on
    ? h('span', {}, state, state ? ' ' : null, 'Widgets without a valid token are refused with 401 token_required.')
    : h('span', {}, state, state ? ' ' : null, 'Widgets without a token connect as anonymous visitors; their userId is whatever the browser claims.'));
  const stats = byId('require-token-stats');
  if (on) {
    load(stats, 'Counting refusals…', () => api('/audit/top', { query: { project: id, by: 'reason', reason: 'token_required', n: 1 } }), (t) => {
      const n = t.items.length ? t.items[0].count : 0;
      fill(stats, `In the last 24 h, ${num(n)} connection${n === 1 ? ' was' : 's were'} refused for coming without a token (token_required).`);
    });
  } else {
    load(stats, 'Counting tokenless connections…', preview, (a) => fill(stats, previewText(a, 'were accepted as anonymous visitors')));
  }
}

// preview counts the last 24 h's connections that came without a token
// (accepted as anonymous), which Require widget token would refuse.
function preview() {
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  return api(`${base}/users`, { query: { since, limit: 1 } }).then((u) => u.anonymous);
}

function previewText(a, outcome) {
  return `In the last 24 h, ${num(a.connections)} connection${a.connections === 1 ? '' : 's'} (${num(a.visitors)} user${a.visitors === 1 ? '' : 's'}) came without a valid token and ${outcome}.`;
}

function wireRequireToken() {
  const sw = document.getElementById('require-token-switch');
  if (!sw) return;
  sw.addEventListener('click', async () => {
    const turnOn = !project.requireToken;
    const reasonId = 'require-token-reason';
    const intro = [];
    if (turnOn) {
      const box = h('div', { testid: 'require-token-preview', role: 'status' });
      load(box, 'Reading the last 24 hours of the audit…', preview, (a) => {
        fill(box, h('p', { class: a.connections ? 'consequence' : '' }, previewText(a, 'would now be refused')),
          h('p', { class: 'hint' }, 'Users are counted by client address and browser: anonymous visitors have no verified id.'),
          a.connections ? h('p', {}, 'Make sure your site passes a widget token (signed by your backend with the Secret Key) before switching it on.') : null);
      });
      intro.push(h('p', {}, 'Widget requests without a valid token will receive a 401 response (token_required).'), box);
    } else {
      intro.push(h('p', { class: 'consequence' }, 'Widgets without a token will connect again, as anonymous visitors whose identity nobody verified.'),
        h('p', {}, 'The docs recommend keeping it on in production.'));
    }
    const result = await formDialog({
      title: turnOn ? 'Require widget token?' : 'Stop requiring a widget token?',
      testid: 'require-token-dialog',
      intro,
      fields: [field(reasonId, ['Reason ', optional('(optional, shown in the audit)')], h('input', { id: reasonId, name: 'reason', type: 'text', maxlength: 1000, autocomplete: 'off', testid: 'require-token-reason' }))],
      submitLabel: turnOn ? 'Require widget token' : 'Stop requiring tokens',
      danger: !turnOn,
      onSubmit: (d) => api(base, { method: 'PATCH', body: { requireToken: turnOn, ...(d.reason.trim() ? { reason: d.reason.trim() } : {}) } }),
    });
    if (!result) return;
    show(result.project);
    showResult(result, turnOn ? 'Require widget token is on.' : 'Require widget token is off.');
    sw.focus();
  });
}

// ---- Secret key ----

function showKeys() {
  const keys = [...project.keys].sort((a, b) => b.version - a.version);
  const current = keys.find((k) => k.version === project.keyVersion) || keys[0];
  const box = byId('keys');
  fill(box,
    current ? kv([
      ['Current version', h('span', { testid: 'key-version' }, `v${current.version}`)],
      ['Fingerprint', h('code', { testid: 'key-fingerprint' }, current.fingerprint)],
      ['Created', time(current.createdAt)],
    ], 'current-key') : null,
    keys.length > 1 ? h('h3', {}, 'Previous keys in their grace period') : null,
    keys.length > 1 ? table({
      caption: 'Previous keys still verifying tokens',
      testid: 'grace-keys',
      rows: keys.filter((k) => k !== current),
      columns: [
        { label: 'Version', cell: (k) => `v${k.version}` },
        { label: 'Fingerprint', cell: (k) => h('code', {}, k.fingerprint) },
        { label: 'Created', cell: (k) => time(k.createdAt) },
        { label: 'Stops verifying', cell: (k) => (k.graceUntil ? time(k.graceUntil) : '—') },
      ],
    }) : null,
    h('p', { class: 'hint' }, 'The fingerprint is the first 16 hex digits of the key\'s SHA-256: compare it with ', h('code', {}, 'printf %s "$HISSUNO_SECRET_KEY" | sha256sum'), ' to check which key your backend holds.'),
  );
}

// ---- Allowed origins ----

function showOrigins() {
  const box = byId('origins');
  const origins = project.origins;
  if (!origins.length) {
    empty(box, 'The list is empty: every origin is permitted (development mode).',
      can('projects:change') ? 'Add your sites\' origins before going live, so that the widget renders only there.' : 'An admin adds the sites\' origins before going live.');
    return;
  }
  fill(box, h('ul', { class: 'bars', testid: 'origin-list' }, origins.map((o) => h('li', { dataset: { testid: 'origin-item', origin: o } },
    h('span', { class: 'bar-key' }, h('code', {}, o), ' ', badge(o.includes('://*.') ? 'wildcard: every subdomain' : 'exact', 'info')),
    can('projects:change') ? h('button', { type: 'button', class: 'button button-small', 'aria-label': `Remove ${o}`, testid: 'origin-remove', onclick: () => removeOrigin(o) }, 'Remove') : h('span', {}),
  ))));
}

function wireOrigins() {
  const form = document.getElementById('add-origin-form');
  if (form) {
    const input = byId('add-origin-input');
    const reason = byId('add-origin-reason');
    const error = byId('add-origin-error');
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      setError(error, null, input);
      const o = input.value.trim();
      if (!o) {
        setError(error, 'Type an origin, such as https://myapp.com or *.myapp.com.', input);
        input.focus();
        return;
      }
      try {
        const before = project.origins.length;
        const result = await busy(form.querySelector('button[type="submit"]'), 'Adding…', () =>
          api(base, { method: 'PATCH', body: { origins: [...project.origins, o], ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) } }));
        show(result.project);
        if (result.project.origins.length === before) {
          showResult(result, `${o} was already allowed: the list holds it in its canonical form.`);
        } else {
          showResult(result, `Added ${result.project.origins[result.project.origins.length - 1]}.`);
        }
        form.reset();
        input.focus();
      } catch (err) {
        setError(error, err, input);
        input.focus();
      }
    });
  }

  const test = byId('origin-test-form');
  const out = byId('origin-test-result');
  test.addEventListener('submit', async (e) => {
    e.preventDefault();
    const o = byId('origin-test-input').value.trim();
    await load(out, 'Testing…', () => api(`${base}/origin-check`, { query: { origin: o } }), (v) => {
      fill(out, notice(v.allowed ? 'ok' : 'danger',
        h('p', {}, v.allowed ? badge('Allowed', 'ok') : badge('Refused', 'danger'), ' ', h('strong', {}, o || '(no Origin header)'), v.reason ? [' — ', h('code', {}, v.reason)] : null),
        h('p', { testid: 'origin-test-explanation' }, v.explanation),
        v.pattern ? h('p', {}, 'Matched pattern: ', h('code', {}, v.pattern)) : null));
    });
  });
}

async function removeOrigin(o) {
  const last = project.origins.length === 1;
  const reasonId = 'remove-origin-reason';
  const result = await formDialog({
    title: `Remove ${o}?`,
    testid: 'remove-origin-dialog',
    intro: [
      h('p', {}, 'Widgets on this origin will no longer render.'),
      last ? h('p', { class: 'consequence' }, 'It is the last one: the list becomes empty and every origin is then permitted (development mode).') : null,
    ],
    fields: [field(reasonId, ['Reason ', optional('(optional, shown in the audit)')], h('input', { id: reasonId, name: 'reason', type: 'text', maxlength: 1000, autocomplete: 'off' }))],
    submitLabel: 'Remove origin',
    danger: true,
    onSubmit: (d) => api(base, { method: 'PATCH', body: { origins: project.origins.filter((x) => x !== o), ...(d.reason.trim() ? { reason: d.reason.trim() } : {}) } }),
  });
  if (!result) return;
  show(result.project);
  showResult(result, `Removed ${o}.`);
  byId('add-origin-input').focus();
}

// ---- Rotate ----

const GRACE = [
  ['600', '10 minutes'],
  ['3600', '1 hour'],
  ['21600', '6 hours'],
  ['86400', '24 hours'],
  ['604800', '7 days'],
  ['2592000', '30 days'],
];

function wireRotate() {
  const button = document.getElementById('rotate-button');
  if (!button) return;
  button.addEventListener('click', async () => {
    const consequence = h('p', { class: 'consequence', testid: 'rotate-consequence', 'aria-live': 'polite' });
    const graceSelect = h('select', { id: 'rotate-grace-seconds', name: 'graceSeconds', disabled: true, testid: 'rotate-grace-seconds' }, GRACE.map(([v, l]) => h('option', { value: v, selected: v === '3600' }, l)));
    const immediate = h('input', { type: 'radio', name: 'when', value: 'now', id: 'rotate-now', checked: true, testid: 'rotate-immediate' });
    const grace = h('input', { type: 'radio', name: 'when', value: 'grace', id: 'rotate-grace', testid: 'rotate-grace' });
    const update = () => {
      graceSelect.disabled = !grace.checked;
      if (grace.checked) {
        const s = Number(graceSelect.value);
        consequence.textContent = `Every token signed with the current key stops working in ${duration(s)} (about ${localTime(Date.now() + s * 1000)}). Until then both keys verify: switch your backend to the new key meanwhile.`;
      } else {
        consequence.textContent = 'Every token signed with the current key stops working at once (401 token_bad_signature): widgets reconnect only with tokens signed by the new key.';
      }
    };
    for (const el of [immediate, grace, graceSelect]) el.addEventListener('change', update);
    update();
    const result = await formDialog({
      title: 'Rotate the secret key?',
      testid: 'rotate-dialog',
      intro: [
        h('p', {}, `The project's key is v${project.keyVersion}; rotating makes v${project.keyVersion + 1}, shown once.`),
        consequence,
      ],
      fields: [
        h('fieldset', {}, h('legend', {}, 'When does the current key stop working?'),
          h('label', { class: 'check', for: 'rotate-now' }, immediate, h('span', {}, 'Immediately')),
          h('label', { class: 'check', for: 'rotate-grace' }, grace, h('span', {}, 'After a grace period')),
          field('rotate-grace-seconds', 'Grace period', graceSelect)),
        field('rotate-reason', ['Reason ', optional('(optional, shown in the audit)')], h('input', { id: 'rotate-reason', name: 'reason', type: 'text', maxlength: 1000, autocomplete: 'off', testid: 'rotate-reason' })),
      ],
      submitLabel: 'Rotate key',
      danger: true,
      onSubmit: (d) => {
        const body = { graceSeconds: d.when === 'grace' ? Number(d.graceSeconds) : 0 };
        if (d.reason.trim()) body.reason = d.reason.trim();
        return api(`${base}/rotate`, { method: 'POST', body });
      },
    });
    if (!result) return;
    show(result.project);
    showResult(result, `The key is rotated: v${result.project.keyVersion} is current.`);
    if (result.secretKey) {
      await secretDialog({
        title: 'Copy your new Secret Key',
        testid: 'secret-key-dialog',
        label: `Secret Key v${result.project.keyVersion}`,
        secret: result.secretKey,
        warning: [
          h('p', {}, h('strong', {}, 'Never expose it in client-side code.'), ' Put it in your backend\'s environment (HISSUNO_SECRET_KEY) and mint tokens with it.'),
          h('p', {}, 'This is the only time it is shown; a reload of this page will not show it again.'),
        ],
        extra: [confirmations(result, 'Verifiers holding the new key')],
      });
    }
    button.focus();
  });
}

// ---- Revocations ----

function loadRevocations() {
  const box = byId('revocations');
  load(box, 'Loading revoked users…', () => api(`${base}/revocations`), (data) => {
    if (!data.revocations.length) {
      empty(box, 'No user is revoked.', can('projects:change') ? 'Revoke a user below when their tokens must stop working, for example after a stolen laptop.' : '');
      return;
    }
    fill(box, table({
      caption: 'Revoked users',
      testid: 'revocations-table',
      rows: data.revocations,
      rowAttrs: (r) => ({ dataset: { testid: 'revocation-row', userId: r.userId } }),
      columns: [
        { label: 'User id', cell: (r) => h('a', { href: `${base}/users/${encodeURIComponent(r.userId)}` }, r.userId) },
        { label: 'Tokens issued before', cell: (r) => time(r.revokedBefore) },
        ...(can('projects:change') ? [{ label: '', cell: (r) => h('button', { type: 'button', class: 'button button-small', 'aria-label': `Lift the revocation of ${r.userId}`, testid: 'lift-revocation', onclick: () => lift(r.userId) }, 'Lift') }] : []),
      ],
    }));
  });
}

function wireRevocations() {
  const form = document.getElementById('revoke-form');
  if (!form) return;
  const user = byId('revoke-user');
  const reason = byId('revoke-reason');
  const error = byId('revoke-error');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setError(error, null, user);
    const u = user.value.trim();
    if (!u) {
      setError(error, 'Type the userId your tokens carry.', user);
      user.focus();
      return;
    }
    const ok = await confirmDialog({
      title: `Revoke the tokens of ${u}?`,
      testid: 'revoke-dialog',
      body: [h('p', { class: 'consequence' }, `Every token of ${u} issued before now stops working (401 token_revoked). Tokens your backend mints for them from now on work.`)],
      confirmLabel: 'Revoke tokens',
      danger: true,
    });
    if (!ok) return;
    try {
      const result = await busy(form.querySelector('button[type="submit"]'), 'Revoking…', () =>
        api(`${base}/revocations`, { method: 'POST', body: { userId: u, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) } }));
      show(result.project);
      showResult(result, `The tokens of ${u} are revoked.`);
      form.reset();
      loadRevocations();
    } catch (err) {
      setError(error, err, user);
    }
  });
}

async function lift(userId) {
  const result = await formDialog({
    title: `Lift the revocation of ${userId}?`,
    testid: 'lift-dialog',
    intro: [h('p', {}, `The tokens of ${userId} that are otherwise valid work again, including ones issued before the revocation.`)],
    fields: [field('lift-reason', ['Reason ', optional('(optional, shown in the audit)')], h('input', { id: 'lift-reason', name: 'reason', type: 'text', maxlength: 1000, autocomplete: 'off', testid: 'lift-reason' }))],
    submitLabel: 'Lift revocation',
    onSubmit: (d) => api(`${base}/revocations/${encodeURIComponent(userId)}`, { method: 'DELETE', query: { reason: d.reason.trim() } }),
  });
  if (!result) return;
  show(result.project);
  showResult(result, `The revocation of ${userId} is lifted.`);
  loadRevocations();
}
