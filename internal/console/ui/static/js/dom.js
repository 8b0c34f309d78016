// Building the page: elements made with the DOM API (never HTML strings,
// so that nothing the API returns is ever parsed as markup), the states of
// a part of a page (loading, failed, empty) and tables.

import { ApiError } from './api.js';

// Properties set as such rather than as attributes.
const PROPS = new Set(['value', 'checked', 'selected', 'indeterminate']);

// h makes an element: h('a', {href, class, dataset, onclick}, ...children).
// Children are nodes, strings, numbers, arrays of them, or null.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'testid') el.dataset.testid = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

// append adds children (as h takes them) to an element.
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// fill replaces an element's children (as h takes them: null and false
// are left out, not written as text).
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// byId is document.getElementById, failing loudly on a missing id.
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no element #${id}`);
  return el;
}

// loading shows that a part of the page is waiting for the API; after a
// few seconds it says so again, so that a slow answer is not mistaken for
// a hung page.
export function loading(el, what = 'Loading…') {
  const text = h('span', {}, what);
  const state = h('p', { class: 'state state-loading', role: 'status', testid: 'state-loading' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
  fill(el, state);
  const slow = setTimeout(() => {
    if (state.isConnected) text.textContent = `${what} This is taking longer than usual; the console is still waiting for an answer.`;
  }, 4000);
  return () => clearTimeout(slow);
}

// failure shows what the API said went wrong, with a retry button.
export function failure(el, err, retry) {
  const box = h('div', { class: 'state state-error', role: 'alert', testid: 'state-error' });
  if (err instanceof ApiError) {
    const title = err.status ? `${err.title} (${err.status})` : err.title;
    box.append(h('p', { class: 'state-title' }, title));
    if (err.detail) box.append(h('p', { testid: 'problem-detail' }, err.detail));
    if (err.errors.length) {
      box.append(h('ul', {}, err.errors.map((e) => h('li', {}, [e.location, e.message].filter(Boolean).join(': ')))));
    }
    if (err.status === 403) box.append(h('p', {}, 'Your role does not allow this. An owner can change your role under Accounts.'));
    if (err.status === 503) box.append(h('p', {}, 'The audit (ClickHouse) may be starting or away; the rest of the console keeps working.'));
  } else {
    box.append(h('p', { class: 'state-title' }, 'Something went wrong'), h('p', {}, err && err.message ? err.message : String(err)));
  }
  if (retry) box.append(h('button', { type: 'button', class: 'button', onclick: retry, testid: 'retry' }, 'Try again'));
  fill(el, box);
}

// empty says there is nothing to show, and what to do about it.
export function empty(el, title, ...what) {
  fill(el, h('div', { class: 'state state-empty', testid: 'state-empty' }, h('p', { class: 'state-title' }, title), what.length ? h('p', {}, what) : null));
}

// load runs fn (a promise of data) with el showing its state, then
// render(data). On failure el shows the error and a retry; load resolves
// to the data, or undefined on failure.
export async function load(el, what, fn, render) {
  const stop = loading(el, what);
  try {
    const data = await fn();
    stop();
    render(data);
    return data;
  } catch (e) {
    stop();
    if (e && e.name === 'AbortError') return undefined;
    failure(el, e, () => load(el, what, fn, render));
    return undefined;
  }
}

// notice is a message box: kind ok, warn or danger.
export function notice(kind, ...children) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'danger' ? 'alert' : 'status' }, children);
}

// table is a data table that becomes a list of cards on narrow screens.
//   columns: [{label, cell(row) → node|string, num, class}]
//   rows: the records; caption: the table's caption (visually hidden
//   when hideCaption); rowAttrs(row) → attributes of the <tr>.
export function table({ caption, hideCaption = true, columns, rows, rowAttrs, testid }) {
  const head = h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label || h('span', { class: 'visually-hidden' }, 'Actions')))));
  const body = h('tbody', {}, rows.map((r) => row(columns, r, rowAttrs)));
  const t = h('table', { class: 'data responsive', testid }, caption ? h('caption', { class: hideCaption ? 'visually-hidden' : null }, caption) : null, head, body);
  return h('div', { class: 'table-wrap' }, t);
}

// row is one <tr> of table.
export function row(columns, r, rowAttrs) {
  return h('tr', rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h('td', { 'data-label': c.label, class: [c.num ? 'num' : '', c.class || ''].join(' ').trim() || null }, c.cell(r))));
}

// kv is a definition list of [term, value] pairs.
export function kv(pairs, testid) {
  return h('dl', { class: 'kv', testid }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === '' || v === undefined || v === null ? h('span', { class: 'subtle' }, '—') : v)]));
}

// badge is a small label: kind ok, danger, warn, info or none.
export function badge(text, kind) {
  return h('span', { class: kind ? `badge badge-${kind}` : 'badge' }, text);
}

// outcomeBadge is a decision's outcome as a badge.
export function outcomeBadge(decision) {
  const kind = { accept: 'ok', unauthorized: 'danger', origin_blocked: 'warn' }[decision];
  return badge(decision || '—', kind);
}

// setError shows a form's error (or clears it with null), marking the
// fields it names invalid.
export function setError(el, err, ...fields) {
  for (const f of fields) f.removeAttribute('aria-invalid');
  if (!err) {
    el.replaceChildren();
    return;
  }
  for (const f of fields) f.setAttribute('aria-invalid', 'true');
  if (err instanceof ApiError) {
    fill(el, err.detail || err.title);
    if (err.errors.length) el.append(h('ul', {}, err.errors.map((e) => h('li', {}, [e.location, e.message].filter(Boolean).join(': ')))));
  } else {
    fill(el, typeof err === 'string' ? err : err.message);
  }
}

// busy disables a button while a promise runs, with a label saying so.
export async function busy(button, label, fn) {
  const old = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (label) button.textContent = label;
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    if (label) button.textContent = old;
  }
}

// field is a labelled form field: label (nodes), the input (whose id is
// id), and an optional hint (its id hintId, for aria-describedby).
export function field(id, label, input, hint, hintId) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('p', { class: 'hint', id: hintId }, hint) : null);
}

// optional is the "(optional …)" of a label.
export function optional(text = '(optional)') {
  return h('span', { class: 'optional' }, text);
}
