// Who is signed in (GET /api/v1/session), and what the page may offer
// them: a control that changes something is shown only to a role the API
// lets do it, so that a security account never meets a button that fails.
// Hiding is not the protection (the API refuses), only courtesy.

import { api, toSignIn } from './api.js';
import { byId, failure, notice } from './dom.js';
import { zone } from './format.js';

// permissions mirrors the API's role table (internal/console/api.go).
const permissions = {
  owner: ['projects:read', 'projects:change', 'audit:read', 'accounts:manage'],
  admin: ['projects:read', 'projects:change', 'audit:read'],
  security: ['projects:read', 'audit:read'],
};

let current = null;

// me is who is signed in (after start).
export function me() {
  return current;
}

// can reports whether the signed-in account may do something:
// projects:create also needs every project in scope, as the API asks.
export function can(perm) {
  if (!current) return false;
  const granted = permissions[current.role] || [];
  if (perm === 'projects:create') return granted.includes('projects:change') && current.projects.length === 0;
  return granted.includes(perm);
}

// start loads the session, fills the header and shows the controls the
// role allows. A signed-out browser goes to the sign-in page. It resolves
// to the session, or null when the page could not start (shown in main).
export async function start() {
  const tz = document.getElementById('time-zone');
  if (tz) tz.textContent = zone;
  // The page's first states are the template's "Loading…": say so again
  // if the console is slow to answer who is signed in.
  const slow = setTimeout(() => {
    for (const el of document.querySelectorAll('main .state-loading')) {
      el.append(' This is taking longer than usual; the console is still waiting for an answer.');
    }
  }, 4000);
  try {
    current = await api('/session', { signedOut: true });
  } catch (e) {
    clearTimeout(slow);
    if (e.status === 401) {
      toSignIn();
      return null;
    }
    failure(byId('main'), e, () => location.reload());
    return null;
  }
  clearTimeout(slow);
  const name = document.getElementById('whoami-name');
  if (name) name.textContent = current.email || current.tokenId || current.actor;
  const role = document.getElementById('whoami-role');
  if (role) {
    role.textContent = current.role;
    role.hidden = false;
  }
  document.body.dataset.role = current.role;
  applyPermissions(document);
  const out = document.getElementById('sign-out');
  if (out) out.addEventListener('click', signOut);
  return current;
}

// applyPermissions shows the [data-requires] elements under root that the
// role allows, and removes the others.
export function applyPermissions(root) {
  for (const el of root.querySelectorAll('[data-requires]')) {
    if (can(el.dataset.requires)) el.hidden = false;
    else el.remove();
  }
}

async function signOut(e) {
  const button = e.currentTarget;
  button.disabled = true;
  try {
    await api('/session', { method: 'DELETE', signedOut: true });
  } catch (err) {
    if (err.status !== 401) {
      button.disabled = false;
      byId('main').prepend(notice('danger', `Signing out failed: ${err.detail || err.title}. Try again.`));
      return;
    }
  }
  location.assign('/sign-in?why=signed-out');
}
