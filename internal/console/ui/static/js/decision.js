// One decision of the audit with every field it records, as the audit
// explorer and a user's history show it.

import { h, kv, outcomeBadge, badge } from './dom.js';
import { num, time, utc, micros } from './format.js';

// decisionFields is a definition list of every field of an audit record.
export function decisionFields(d) {
  const meta = Object.entries(d.userMetadata || {});
  return kv([
    ['Time', h('span', {}, time(d.time), ' ', h('span', { class: 'subtle' }, `(${utc(d.time)})`))],
    ['Decision', outcomeBadge(d.decision)],
    ['Reason', d.reason ? h('code', {}, d.reason) : ''],
    ['Message', d.message],
    ['Project', h('code', {}, d.projectId)],
    ['Session', d.session],
    ['User id', d.userId],
    ['User verified', d.userVerified ? 'yes, by the token' : 'no'],
    ['User metadata', meta.length ? h('ul', { class: 'meta' }, meta.map(([k, v]) => h('li', {}, h('strong', {}, `${k}: `), v))) : ''],
    ['Claimed user id', d.claimedUserId],
    ['Origin', d.origin || '(no Origin header)'],
    ['Token fingerprint', d.tokenFingerprint ? h('code', {}, d.tokenFingerprint) : ''],
    ['Key version', d.keyVersion ? `v${d.keyVersion}` : ''],
    ['Clock skew', d.skewSeconds ? `${num(d.skewSeconds)} s` : '0 s'],
    ['Latency', micros(d.latencyMicros)],
    ['Verifier', d.verifier],
    ['Ingress', d.ingress],
    ['Client IP', d.clientIp],
    ['User agent', d.userAgent],
    ['Decision id', h('code', {}, d.decisionId)],
    ['Attempt id', h('code', {}, d.attemptId)],
  ], 'decision-fields');
}

// userCell is a decision's user, marked when a token verified it.
export function userCell(d) {
  if (!d.userId) return h('span', { class: 'subtle' }, '—');
  return h('span', {}, d.userId, d.userVerified ? [' ', badge('verified', 'ok')] : null);
}
