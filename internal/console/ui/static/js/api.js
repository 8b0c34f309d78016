// The console's only way to its data: the admin API under /api/v1, same
// origin, with the session cookie. Errors are the API's problem documents
// (RFC 9457) as ApiError, so that a page can show what the API said.

export const API = '/api/v1';

// DEFAULT_TIMEOUT is how long a call may take before the page says the
// console did not answer.
const DEFAULT_TIMEOUT = 30000;

// ApiError is a failed call: the HTTP status (0 when nothing answered), the
// problem's title, detail and field errors, and Retry-After in seconds.
export class ApiError extends Error {
  constructor(status, problem = {}, retryAfter = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || (status ? `Error ${status}` : 'No answer');
    this.detail = problem.detail || '';
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.retryAfter = retryAfter;
  }
}

// url is the URL of an API path with the query's non-empty values.
export function url(path, query = {}) {
  const u = new URL(API + path, location.origin);
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

// api calls the API and returns its JSON answer (null for 204).
//   method, body (sent as JSON), query, signal, timeout (ms),
//   signedOut: the caller handles a 401 itself (signing in); otherwise a
//   401 means the session ended and the browser goes to the sign-in page.
export async function api(path, { method = 'GET', body, query, signal, timeout = DEFAULT_TIMEOUT, signedOut = false } = {}) {
  const ctl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; ctl.abort(); }, timeout);
  const abort = () => ctl.abort();
  if (signal) {
    if (signal.aborted) ctl.abort();
    signal.addEventListener('abort', abort, { once: true });
  }
  const headers = { Accept: 'application/json, application/problem+json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: ctl.signal,
    });
  } catch (e) {
    if (timedOut) {
      throw new ApiError(0, { title: 'No answer', detail: `The console did not answer within ${timeout / 1000} s. It may be busy; try again.` });
    }
    if (signal && signal.aborted) throw e;
    throw new ApiError(0, { title: 'Network error', detail: 'The console could not be reached. Check your connection and that the console is running, then try again.' });
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', abort);
  }
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  let data = null;
  if (type.includes('json')) {
    data = await res.json().catch(() => null);
  } else {
    data = await res.text().catch(() => '');
  }
  if (!res.ok) {
    const problem = data && typeof data === 'object' ? data : { title: res.statusText, detail: typeof data === 'string' ? data.trim() : '' };
    const retry = res.headers.get('Retry-After');
    const err = new ApiError(res.status, problem, retry === null ? null : Number(retry));
    if (res.status === 401 && !signedOut) toSignIn('expired');
    throw err;
  }
  return data;
}

// toSignIn sends the browser to the sign-in page, to come back here.
export function toSignIn(why) {
  const next = location.pathname + location.search;
  const q = new URLSearchParams({ next });
  if (why) q.set('why', why);
  location.assign('/sign-in?' + q.toString());
}

// problemText is an error in one line: the API's detail or the message.
export function problemText(err) {
  if (err instanceof ApiError) {
    const fields = err.errors.map((e) => [e.location, e.message].filter(Boolean).join(': ')).filter(Boolean);
    return [err.detail || err.title, ...fields].join('; ');
  }
  return err && err.message ? err.message : String(err);
}
