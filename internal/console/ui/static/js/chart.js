// Charts drawn by uPlot (vendored, pinned: static/vendor/uplot): the
// projects' sparklines and the audit's stacked decisions over time. Times
// on the axes are the viewer's; counts are grouped.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { num, localTime } from './format.js';

// BUCKET_SECONDS are the widths of the API's series buckets.
export const BUCKET_SECONDS = { minute: 60, hour: 3600, day: 86400 };

// OUTCOME_COLORS colour the outcomes; reasons get REASON_COLORS, then the
// palette.
export const OUTCOME_COLORS = { accept: '#2e8b57', unauthorized: '#c62828', origin_blocked: '#d97706' };
const REASON_COLORS = {
  '(accept)': '#2e8b57',
  token_required: '#c62828',
  origin_not_allowed: '#d97706',
  origin_missing: '#a16207',
  token_expired: '#7c3aed',
  token_bad_signature: '#be185d',
  token_revoked: '#0e7490',
  unknown_project: '#4b5563',
  token_malformed: '#9f1239',
  token_not_yet_valid: '#4338ca',
  token_missing_exp: '#0369a1',
  token_invalid_claims: '#86198f',
  token_alg_not_allowed: '#78350f',
  token_too_large: '#334155',
};
const PALETTE = ['#1d4ed8', '#0f766e', '#9333ea', '#b45309', '#be123c', '#475569'];

// colorOf is a series key's colour.
export function colorOf(key, i = 0) {
  return OUTCOME_COLORS[key] || REASON_COLORS[key] || PALETTE[i % PALETTE.length];
}

// bucketTimes are the starts (Unix seconds) of every bucket from the one
// holding since to the one before until, as the API counts them (UTC).
export function bucketTimes(since, until, bucket) {
  const w = BUCKET_SECONDS[bucket];
  const start = Math.floor(Date.parse(since) / 1000 / w) * w;
  const end = Date.parse(until) / 1000;
  const out = [];
  for (let t = start; t < end && out.length < 10000; t += w) out.push(t);
  return out;
}

// matrix turns the API's points into one array of counts per key, over
// the buckets x (gaps are 0), and the keys by total, largest first
// (outcomes in their fixed order).
export function matrix(points, x, split) {
  const index = new Map(x.map((t, i) => [t, i]));
  const values = {};
  const totals = {};
  for (const p of points) {
    const i = index.get(Math.floor(Date.parse(p.time) / 1000));
    if (i === undefined) continue;
    if (!values[p.key]) {
      values[p.key] = new Array(x.length).fill(0);
      totals[p.key] = 0;
    }
    values[p.key][i] += p.count;
    totals[p.key] += p.count;
  }
  let keys = Object.keys(values);
  if (split === 'decision') {
    const order = ['accept', 'unauthorized', 'origin_blocked'];
    keys.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  } else {
    keys.sort((a, b) => (a === '(accept)' ? -1 : b === '(accept)' ? 1 : totals[b] - totals[a] || a.localeCompare(b)));
  }
  return { keys, values, totals };
}

// sparkline draws a small chart of decisions (and refusals) per bucket.
export function sparkline(el, x, total, refused) {
  const opts = {
    width: 120,
    height: 32,
    pxAlign: false,
    cursor: { show: false },
    select: { show: false },
    legend: { show: false },
    axes: [{ show: false }, { show: false }],
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    series: [
      {},
      { stroke: '#1d4ed8', fill: 'rgba(29, 78, 216, 0.15)', width: 1.5, points: { show: false } },
      { stroke: '#c62828', width: 1.5, points: { show: false } },
    ],
  };
  el.replaceChildren();
  return new uPlot(opts, [x, total, refused], el);
}

// stackedChart draws counts per bucket stacked by key: x the bucket
// starts, keys bottom to top, values their counts. The legend shows each
// key's own count at the cursor. Returns {destroy}.
export function stackedChart(el, { x, keys, values, bucket, label }) {
  const w = BUCKET_SECONDS[bucket];
  // Drawn top layer first: each lower layer is drawn over the bar of the
  // layers above, so every bar shows each key's own share.
  const cumulative = [];
  let acc = new Array(x.length).fill(0);
  for (const k of keys) {
    acc = acc.map((a, i) => a + values[k][i]);
    cumulative.push(acc);
  }
  const order = keys.map((_, i) => i).reverse();
  const bars = uPlot.paths.bars({ size: [0.85, 48] });
  const series = [
    { label: 'Time', value: (u, v) => (v == null ? '—' : localTime(v * 1000)) },
    ...order.map((i, n) => ({
      label: keys[i],
      stroke: colorOf(keys[i], n),
      fill: colorOf(keys[i], n),
      width: 0,
      paths: bars,
      points: { show: false },
      value: (u, v, si, idx) => (idx == null ? '—' : num(values[keys[i]][idx])),
    })),
  ];
  const axis = { stroke: '#4b5262', grid: { stroke: '#e5e7eb', width: 1 }, ticks: { stroke: '#cfd4dc', width: 1 } };
  const opts = {
    width: Math.max(280, el.clientWidth),
    height: el.clientWidth < 500 ? 220 : 280,
    pxAlign: false,
    series,
    legend: { live: true },
    cursor: { points: { show: false }, drag: { x: false, y: false } },
    select: { show: false },
    scales: {
      x: { time: true, range: (u, min, max) => [min - w / 2, max + w / 2] },
      y: { range: (u, min, max) => [0, max > 0 ? Math.ceil(max * 1.1) : 1] },
    },
    axes: [
      { ...axis },
      { ...axis, size: 60, values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? num(v) : '')) },
    ],
  };
  el.replaceChildren();
  const data = [x, ...order.map((i) => cumulative[i])];
  const plot = new uPlot(opts, data, el);
  const wrap = plot.root.querySelector('.u-wrap');
  if (wrap) {
    wrap.setAttribute('role', 'img');
    wrap.setAttribute('aria-label', label);
  }
  const resize = new ResizeObserver(() => {
    const width = Math.max(280, el.clientWidth);
    if (Math.abs(width - plot.width) > 2) plot.setSize({ width, height: width < 500 ? 220 : 280 });
  });
  resize.observe(el);
  return {
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}
