// How the console writes numbers and times: grouped in the viewer's
// locale, times in the viewer's time zone with UTC in their title.

import { h } from './dom.js';

const integer = new Intl.NumberFormat();
const percent = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 1 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

// zone is the viewer's time zone name.
export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

// num groups an integer: 1,234,567 (or 1 234 567).
export function num(n) {
  return integer.format(Number(n) || 0);
}

// pct is a ratio as a percentage.
export function pct(ratio) {
  return percent.format(Number(ratio) || 0);
}

// utc is a time in UTC, to the second: 2025-06-01 14:03:05 UTC.
export function utc(t) {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC');
}

// localTime is a time as the viewer reads it.
export function localTime(t) {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return '—';
  return dateTime.format(d);
}

// clockTime is the time of day only.
export function clockTime(t) {
  return clock.format(t instanceof Date ? t : new Date(t));
}

// time is a <time> element: local time shown, UTC in its title.
export function time(t) {
  if (!t) return h('span', { class: 'subtle' }, '—');
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return h('span', { class: 'subtle' }, '—');
  return h('time', { datetime: d.toISOString(), title: utc(d) }, localTime(d));
}

// duration writes seconds as the largest sensible unit: 45 s, 10 min,
// 2 h, 3 days.
export function duration(seconds) {
  const s = Math.abs(Number(seconds) || 0);
  if (s < 60) return `${decimal.format(s)} s`;
  if (s < 3600) return `${decimal.format(s / 60)} min`;
  if (s < 86400) return `${decimal.format(s / 3600)} h`;
  return `${decimal.format(s / 86400)} days`;
}

// micros writes a latency given in microseconds.
export function micros(us) {
  const n = Number(us) || 0;
  if (n < 1000) return `${num(n)} µs`;
  return `${decimal.format(n / 1000)} ms`;
}
