// Sign in: POST /api/v1/session. A wrong email or password says so; a
// throttled one (429) says when to try again and counts down; then back
// to the page that sent the browser here.

import { api } from '../api.js';
import { byId, h, notice, setError } from '../dom.js';
import { clockTime, zone } from '../format.js';

const form = byId('sign-in-form');
const email = byId('sign-in-email');
const password = byId('sign-in-password');
const error = byId('sign-in-error');
const submit = form.querySelector('button[type="submit"]');
byId('time-zone').textContent = zone;

const params = new URLSearchParams(location.search);
const why = params.get('why');
if (why === 'expired') byId('sign-in-notice').append(notice('warn', 'Your session ended (signed out elsewhere, idle for too long or its password changed). Sign in again to go on.'));
if (why === 'signed-out') byId('sign-in-notice').append(notice('ok', 'You are signed out.'));

// next is where to go after signing in: a path of this console only.
function next() {
  const n = params.get('next') || '/projects';
  if (!n.startsWith('/') || n.startsWith('//') || n.startsWith('/\\') || n.startsWith('/sign-in')) return '/projects';
  return n;
}

let countdown = null;

function lockedUntil(seconds) {
  clearInterval(countdown);
  const until = Date.now() + seconds * 1000;
  submit.disabled = true;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(countdown);
      submit.disabled = false;
      setError(error, null);
      error.append('You can try again now.');
      return;
    }
    submit.textContent = `Try again in ${left} s`;
  };
  setError(error, `Too many failed sign-ins. Wait until ${clockTime(until)} (${seconds} s), then try again; check the email and password meanwhile.`, email, password);
  tick();
  countdown = setInterval(() => {
    tick();
    if (!submit.disabled) submit.textContent = 'Sign in';
  }, 1000);
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  setError(error, null, email, password);
  if (!email.value.trim() || !password.value) {
    setError(error, 'Enter your email and your password.', ...[!email.value.trim() ? email : null, !password.value ? password : null].filter(Boolean));
    (!email.value.trim() ? email : password).focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = 'Signing in…';
  try {
    await api('/session', { method: 'POST', body: { email: email.value.trim(), password: password.value }, signedOut: true });
    location.assign(next());
    return;
  } catch (err) {
    submit.disabled = false;
    submit.textContent = 'Sign in';
    if (err.status === 429) {
      lockedUntil(err.retryAfter || 60);
    } else if (err.status === 401) {
      setError(error, 'Wrong email or password. Check both and try again; after several failures sign-in pauses for a while.', email, password);
      password.select();
      password.focus();
    } else if (err.status === 422) {
      setError(error, err, email, password);
    } else {
      setError(error, err);
      error.append(h('p', {}, 'The console could not sign you in just now; try again in a moment.'));
    }
  }
});
