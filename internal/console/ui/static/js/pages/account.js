// Your account: who you are, and changing your password
// (PUT /api/v1/session/password).

import { api } from '../api.js';
import { byId, h, kv, notice, setError, busy, fill } from '../dom.js';
import { time } from '../format.js';
import { start } from '../session.js';

const me = await start();
if (me) {
  fill(byId('account-who'), kv([
    ['Email', me.email || me.tokenId],
    ['Role', me.role],
    ['Projects', me.projects.length ? me.projects.join(', ') : 'every project'],
    ['Recorded as', h('code', {}, me.actor)],
    ['Session ends', me.expiresAt ? h('span', {}, 'at the latest ', time(me.expiresAt), ', sooner after 30 minutes idle') : '—'],
  ], 'account-details'));
  byId('password-username').value = me.email || '';

  const form = byId('password-form');
  const current = byId('current-password');
  const fresh = byId('new-password');
  const repeat = byId('repeat-password');
  const error = byId('password-error');
  const done = byId('password-done');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setError(error, null, current, fresh, repeat);
    fill(done, );
    if (!current.value) return setError(error, 'Enter your current password.', current);
    if (fresh.value.length < 12) return setError(error, 'The new password needs at least 12 characters.', fresh);
    if (fresh.value !== repeat.value) return setError(error, 'The two new passwords differ; type the same one twice.', repeat);
    try {
      await busy(form.querySelector('button[type="submit"]'), 'Changing…', () =>
        api('/session/password', { method: 'PUT', body: { currentPassword: current.value, newPassword: fresh.value } }));
      form.reset();
      fill(done, notice('ok', 'Your password is changed. Every other session of your account has ended.'));
    } catch (err) {
      setError(error, err, err.detail && err.detail.includes('current') ? current : fresh);
    }
  });
}
