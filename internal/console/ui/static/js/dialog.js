// Dialogs: <dialog> shown modal (the page behind is inert), focus kept
// inside it (Tab and Shift+Tab cycle), Escape closes it, and focus goes
// back where it was. formDialog asks and submits; secretDialog shows a
// secret once with a copy button.

import { h, setError, busy } from './dom.js';

let seq = 0;

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

// modal shows a dialog and resolves to the value it was closed with
// (undefined on Escape or the close button).
//   title, testid, body (nodes), actions (nodes), initialFocus (element)
// Returns {dialog, close(value), closed: Promise}.
export function modal({ title, testid, body = [], actions = [], initialFocus, wide = false }) {
  const id = `dialog-title-${++seq}`;
  const opener = document.activeElement;
  let value;
  let locked = false;
  const closeX = h('button', { type: 'button', class: 'close-x', 'aria-label': 'Close', testid: 'dialog-close' }, '×');
  const dialog = h('dialog', { 'aria-labelledby': id, testid, class: wide ? 'wide' : null },
    h('div', { class: 'dialog-body' },
      h('div', { class: 'dialog-head' }, h('h2', { id }, title), closeX),
      body,
      actions.length ? h('div', { class: 'dialog-actions' }, actions) : null));
  const close = (v) => {
    value = v;
    if (dialog.open) dialog.close();
  };
  closeX.addEventListener('click', () => { if (!locked) close(undefined); });
  dialog.addEventListener('cancel', (e) => {
    if (locked) e.preventDefault();
  });
  dialog.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab') return;
    const items = [...dialog.querySelectorAll(FOCUSABLE)].filter((el) => el.offsetParent !== null || el === document.activeElement);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
      e.preventDefault();
      first.focus();
    }
  });
  const closed = new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(value);
    }, { once: true });
  });
  document.body.append(dialog);
  dialog.showModal();
  const target = initialFocus || dialog.querySelector('[autofocus]') || dialog.querySelector('input:not([type="hidden"]):not([readonly]), select, textarea') || closeX;
  target.focus();
  return { dialog, close, closed, lock: (on) => { locked = on; } };
}

// formDialog asks for input and submits it: onSubmit(form data as an
// object, the form) runs with the buttons disabled; its error is shown in
// the dialog, which stays open; its result closes the dialog and is what
// formDialog resolves to (null when cancelled).
//   title, testid, intro (nodes), fields (nodes), submitLabel,
//   danger (a red submit button), onSubmit
export function formDialog({ title, testid, intro = [], fields = [], submitLabel = 'Save', danger = false, onSubmit }) {
  const error = h('div', { class: 'form-error', role: 'alert', testid: 'dialog-error' });
  const submit = h('button', { type: 'submit', class: danger ? 'button button-danger' : 'button button-primary', testid: 'dialog-submit' }, submitLabel);
  const cancel = h('button', { type: 'button', class: 'button', testid: 'dialog-cancel' }, 'Cancel');
  const form = h('form', { novalidate: true, class: 'stack' }, intro, fields, error, h('div', { class: 'dialog-actions' }, cancel, submit));
  const m = modal({ title, testid, body: [form] });
  cancel.addEventListener('click', () => m.close(null));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setError(error, null);
    const data = Object.fromEntries(new FormData(form).entries());
    m.lock(true);
    cancel.disabled = true;
    try {
      const result = await busy(submit, 'Working…', () => onSubmit(data, form));
      m.lock(false);
      m.close(result === undefined ? true : result);
    } catch (err) {
      m.lock(false);
      cancel.disabled = false;
      setError(error, err);
    }
  });
  return m.closed.then((v) => (v === undefined ? null : v));
}

// copyText copies text to the clipboard, falling back to selecting it in
// input where the Clipboard API is unavailable (plain HTTP off loopback).
export async function copyText(text, input) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return true;
  }
  if (input) {
    input.focus();
    input.select();
    return document.execCommand && document.execCommand('copy');
  }
  return false;
}

// secretField is a read-only field holding a secret, with a copy button
// and a status line.
export function secretField({ label, secret, testid }) {
  const inputId = `secret-${++seq}`;
  const input = h('input', { id: inputId, type: 'text', readonly: true, value: secret, spellcheck: 'false', autocomplete: 'off', testid: `${testid}-value` });
  const status = h('p', { class: 'hint', role: 'status', testid: `${testid}-copied` });
  const button = h('button', { type: 'button', class: 'button button-primary', testid: `${testid}-copy` }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      const ok = await copyText(secret, input);
      status.textContent = ok ? 'Copied to the clipboard.' : 'Select the text and copy it (Ctrl+C or ⌘C).';
    } catch {
      input.select();
      status.textContent = 'The browser refused the clipboard: the text is selected, copy it with Ctrl+C or ⌘C.';
    }
  });
  return h('div', { class: 'field' }, h('label', { for: inputId }, label), h('div', { class: 'secret' }, input, button), status);
}

// secretDialog shows a secret this once. It resolves when closed.
//   title, testid, label, secret, warning (nodes), extra (nodes)
export function secretDialog({ title, testid, label, secret, warning = [], extra = [] }) {
  const done = h('button', { type: 'button', class: 'button button-primary', testid: 'dialog-done' }, 'I have stored it');
  const m = modal({
    title, testid,
    body: [
      secretField({ label, secret, testid: 'secret' }),
      h('div', { class: 'warning' }, warning),
      extra,
    ],
    actions: [done],
  });
  done.addEventListener('click', () => m.close(true));
  const input = m.dialog.querySelector('input');
  input.focus();
  input.select();
  return m.closed;
}

// confirmDialog asks a yes/no question.
export function confirmDialog({ title, testid, body = [], confirmLabel = 'Confirm', danger = false }) {
  return formDialog({ title, testid, intro: body, submitLabel: confirmLabel, danger, onSubmit: async () => true });
}
