// Accounts and API tokens, for owners (GET/POST/PATCH /api/v1/accounts…,
// GET/POST/DELETE /api/v1/tokens…): add an account, change its role and
// projects, disable it, reset its password (a one-time password shown
// once); make an API token (shown once), revoke it, see its last use.

import { api } from '../api.js';
import { byId, h, load, table, badge, field, optional, notice, empty, fill } from '../dom.js';
import { time } from '../format.js';
import { start, can } from '../session.js';
import { formDialog, secretDialog, confirmDialog } from '../dialog.js';

const ROLES = ['owner', 'admin', 'security'];
const ROLE_TEXT = {
  owner: 'owner — everything, accounts and tokens included',
  admin: 'admin — projects and the audit',
  security: 'security — reads settings and the audit, changes nothing',
};
let projects = [];

const me = await start();
if (me && !can('accounts:manage')) {
  byId('accounts-denied').hidden = false;
} else if (me) {
  api('/projects').then((d) => { projects = d.projects; }, () => {});
  byId('add-account').addEventListener('click', addAccount);
  byId('create-token').addEventListener('click', createToken);
  loadAccounts();
  loadTokens();
}

function scopeText(list) {
  return list.length ? list.join(', ') : 'every project';
}

// ---- Accounts ----

function loadAccounts() {
  const el = byId('accounts');
  load(el, 'Loading accounts…', () => api('/accounts'), (d) => {
    fill(el, table({
      caption: 'Accounts',
      testid: 'accounts-table',
      rows: d.accounts,
      rowAttrs: (a) => ({ dataset: { testid: 'account-row', email: a.email } }),
      columns: [
        { label: 'Email', cell: (a) => h('span', {}, a.email, a.email === me.email ? [' ', badge('you', 'info')] : null) },
        { label: 'Role', cell: (a) => h('span', { testid: 'account-role' }, a.role) },
        { label: 'Projects', cell: (a) => scopeText(a.projects) },
        { label: 'Status', cell: (a) => (a.disabled ? badge('disabled', 'danger') : badge('active', 'ok')) },
        { label: 'Created', cell: (a) => time(a.createdAt) },
        { label: 'Password changed', cell: (a) => time(a.passwordChangedAt) },
        { label: '', cell: accountActions },
      ],
    }));
  });
}

function accountActions(a) {
  const self = a.email === me.email;
  return h('span', { class: 'actions' },
    h('button', { type: 'button', class: 'button button-small', 'aria-label': `Edit ${a.email}`, testid: 'account-edit', onclick: () => editAccount(a) }, 'Edit'),
    self ? null : h('button', { type: 'button', class: 'button button-small', 'aria-label': `${a.disabled ? 'Enable' : 'Disable'} ${a.email}`, testid: a.disabled ? 'account-enable' : 'account-disable', onclick: () => toggleDisabled(a) }, a.disabled ? 'Enable' : 'Disable'),
    h('button', { type: 'button', class: 'button button-small', 'aria-label': `Reset password of ${a.email}`, testid: 'account-reset-password', onclick: () => resetPassword(a) }, 'Reset password'));
}

// projectPicker is checkboxes of the projects, none checked meaning every
// project. Read it with pickedProjects.
function projectPicker(selected = [], prefix) {
  const known = projects.map((p) => p.projectId);
  const all = [...known, ...selected.filter((s) => !known.includes(s))];
  return h('fieldset', { testid: `${prefix}-projects` },
    h('legend', {}, 'Projects ', optional('(none checked: every project)')),
    all.length
      ? h('div', { class: 'checks' }, all.map((id, i) => {
        const p = projects.find((x) => x.projectId === id);
        return h('label', { class: 'check', for: `${prefix}-project-${i}` },
          h('input', { type: 'checkbox', id: `${prefix}-project-${i}`, name: 'projects', value: id, checked: selected.includes(id) }),
          h('span', {}, p ? `${p.name} (${id})` : id));
      }))
      : h('p', { class: 'hint' }, 'No projects yet: the account may see every project.'));
}

function pickedProjects(form) {
  return [...form.querySelectorAll('input[name="projects"]:checked')].map((i) => i.value);
}

function roleSelect(id, value, roles = ROLES) {
  return h('select', { id, name: 'role', testid: id }, roles.map((r) => h('option', { value: r, selected: r === value }, ROLE_TEXT[r])));
}

async function addAccount() {
  const result = await formDialog({
    title: 'Add an account',
    testid: 'add-account-dialog',
    submitLabel: 'Add account',
    fields: [
      field('new-account-email', 'Email', h('input', { id: 'new-account-email', name: 'email', type: 'email', maxlength: 254, autocomplete: 'off', testid: 'new-account-email' })),
      field('new-account-role', 'Role', roleSelect('new-account-role', 'security')),
      projectPicker([], 'new-account'),
      field('new-account-password', ['Password ', optional('(optional)')], h('input', { id: 'new-account-password', name: 'password', type: 'password', maxlength: 256, autocomplete: 'new-password', 'aria-describedby': 'new-account-password-hint', testid: 'new-account-password' }),
        'Leave it empty to make a one-time password, shown once; at least 12 characters otherwise.', 'new-account-password-hint'),
    ],
    onSubmit: (d, form) => {
      if (!d.email.trim()) throw new Error('Type the email of the person to add.');
      const body = { email: d.email.trim(), role: d.role, projects: pickedProjects(form) };
      if (d.password) body.password = d.password;
      return api('/accounts', { method: 'POST', body });
    },
  });
  if (!result) return;
  loadAccounts();
  if (result.password) {
    await secretDialog({
      title: `Account ${result.account.email} added`,
      testid: 'one-time-password-dialog',
      label: 'One-time password',
      secret: result.password,
      warning: [h('p', {}, 'Give it to them over a channel you trust. It is shown only now; they change it under Your account after signing in.')],
    });
  }
}

async function editAccount(a) {
  const self = a.email === me.email;
  const result = await formDialog({
    title: `Edit ${a.email}`,
    testid: 'edit-account-dialog',
    submitLabel: 'Save',
    intro: [self ? h('p', { class: 'hint' }, 'You cannot give up your own owner role; another owner can.') : null],
    fields: [
      self ? null : field('edit-account-role', 'Role', roleSelect('edit-account-role', a.role)),
      projectPicker(a.projects, 'edit-account'),
      h('p', { class: 'hint' }, 'Changing the role ends the account\'s sessions at once.'),
    ],
    onSubmit: (d, form) => {
      const body = { projects: pickedProjects(form) };
      if (!self && d.role !== a.role) body.role = d.role;
      return api(`/accounts/${encodeURIComponent(a.email)}`, { method: 'PATCH', body });
    },
  });
  if (result) loadAccounts();
}

async function toggleDisabled(a) {
  const disable = !a.disabled;
  const ok = await confirmDialog({
    title: `${disable ? 'Disable' : 'Enable'} ${a.email}?`,
    testid: 'disable-account-dialog',
    body: [h('p', { class: disable ? 'consequence' : '' }, disable ? 'Every session of the account ends at once and it cannot sign in until enabled again.' : 'The account can sign in again with its password.')],
    confirmLabel: disable ? 'Disable account' : 'Enable account',
    danger: disable,
  });
  if (!ok) return;
  try {
    await api(`/accounts/${encodeURIComponent(a.email)}`, { method: 'PATCH', body: { disabled: disable } });
  } catch (err) {
    byId('accounts').prepend(notice('danger', err.detail || err.title));
    return;
  }
  loadAccounts();
}

async function resetPassword(a) {
  const result = await formDialog({
    title: `Reset the password of ${a.email}?`,
    testid: 'reset-password-dialog',
    intro: [h('p', { class: 'consequence' }, 'Every session of the account ends; a one-time password is made and shown once.')],
    submitLabel: 'Reset password',
    danger: true,
    onSubmit: () => api(`/accounts/${encodeURIComponent(a.email)}/password`, { method: 'PUT', body: {} }),
  });
  if (!result) return;
  loadAccounts();
  if (result.password) {
    await secretDialog({
      title: `New password for ${a.email}`,
      testid: 'one-time-password-dialog',
      label: 'One-time password',
      secret: result.password,
      warning: [h('p', {}, 'It is shown only now. Give it over a channel you trust.')],
    });
  }
}

// ---- API tokens ----

function tokenStatus(t) {
  if (t.revokedAt) return badge('revoked', 'danger');
  if (t.expiresAt && Date.parse(t.expiresAt) <= Date.now()) return badge('expired', 'warn');
  return badge('active', 'ok');
}

function loadTokens() {
  const el = byId('tokens');
  load(el, 'Loading API tokens…', () => api('/tokens'), (d) => {
    if (!d.tokens.length) {
      empty(el, 'No API tokens yet.', 'Create one for a deploy script or a SIEM that reads the audit; give it the smallest role and the fewest projects it needs.');
      return;
    }
    fill(el, table({
      caption: 'API tokens',
      testid: 'tokens-table',
      rows: d.tokens,
      rowAttrs: (t) => ({ dataset: { testid: 'token-row', tokenId: t.id } }),
      columns: [
        { label: 'Name', cell: (t) => t.name },
        { label: 'Id', cell: (t) => h('code', {}, t.id) },
        { label: 'Role', cell: (t) => t.role },
        { label: 'Projects', cell: (t) => scopeText(t.projects) },
        { label: 'Created', cell: (t) => h('span', {}, time(t.createdAt), h('br'), h('span', { class: 'hint' }, `by ${t.createdBy}`)) },
        { label: 'Expires', cell: (t) => (t.expiresAt ? time(t.expiresAt) : 'never') },
        { label: 'Last used', cell: (t) => (t.lastUsedAt ? time(t.lastUsedAt) : h('span', { class: 'subtle' }, 'never')) },
        { label: 'Status', cell: tokenStatus },
        { label: '', cell: (t) => (t.revokedAt ? null : h('button', { type: 'button', class: 'button button-small', 'aria-label': `Revoke the token ${t.name}`, testid: 'token-revoke', onclick: () => revokeToken(t) }, 'Revoke')) },
      ],
    }));
  });
}

async function createToken() {
  const result = await formDialog({
    title: 'Create an API token',
    testid: 'create-token-dialog',
    submitLabel: 'Create token',
    fields: [
      field('new-token-name', 'Name', h('input', { id: 'new-token-name', name: 'name', type: 'text', maxlength: 100, autocomplete: 'off', placeholder: 'deploy-bot', testid: 'new-token-name' })),
      field('new-token-role', 'Role', roleSelect('new-token-role', 'security')),
      projectPicker([], 'new-token'),
      field('new-token-expires', ['Expires ', optional('(optional; empty: never)')], h('input', { id: 'new-token-expires', name: 'expiresAt', type: 'datetime-local', testid: 'new-token-expires' })),
    ],
    onSubmit: (d, form) => {
      if (!d.name.trim()) throw new Error('Name the token after what will use it, such as deploy-bot.');
      const body = { name: d.name.trim(), role: d.role, projects: pickedProjects(form) };
      if (d.expiresAt) body.expiresAt = new Date(d.expiresAt).toISOString();
      return api('/tokens', { method: 'POST', body });
    },
  });
  if (!result) return;
  loadTokens();
  await secretDialog({
    title: `API token ${result.token.name}`,
    testid: 'api-token-dialog',
    label: 'API token',
    secret: result.secret,
    warning: [
      h('p', {}, h('strong', {}, 'It is shown only now'), ': the console keeps only its hash. Store it in your automation\'s secret store and send it as ', h('code', {}, 'Authorization: Bearer …'), '.'),
    ],
  });
}

async function revokeToken(t) {
  const ok = await confirmDialog({
    title: `Revoke the token ${t.name}?`,
    testid: 'revoke-token-dialog',
    body: [h('p', { class: 'consequence' }, 'It stops working at once; whatever uses it gets 401.')],
    confirmLabel: 'Revoke token',
    danger: true,
  });
  if (!ok) return;
  try {
    await api(`/tokens/${encodeURIComponent(t.id)}`, { method: 'DELETE' });
  } catch (err) {
    byId('tokens').prepend(notice('danger', err.detail || err.title));
    return;
  }
  loadTokens();
}
