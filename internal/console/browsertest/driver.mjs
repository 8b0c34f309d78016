// Drives Debian's chromium for console/browser_test.go: one browser, a
// browser context per role (each with one page), and the Go test asking
// for one step at a time.
//
//   node driver.mjs
//
// Stdin carries one JSON command a line, {"id", "op", "ctx", ...}; stdout
// answers each with one line, {"id", "ok", "value"} or {"id", "ok": false,
// "error"}. The ops are in OPS below. Each context records what a person
// would call a broken page: an uncaught exception, a console error (but
// "Failed to load resource", which Chromium logs for every API answer of
// 4xx or 5xx, some of which the test provokes), and a Content Security
// Policy violation; the op "problems" hands them over and forgets them.
//
// The exit code is 0 after the op "quit" or the end of stdin, 2 when
// chromium does not start.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const EXECUTABLE = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];
// TIMEOUT bounds every wait of an op unless the command names another.
const TIMEOUT = 15000;
// IGNORED are console errors that are no fault of the page.
const IGNORED = [/^Failed to load resource: the server responded with a status of [45]\d\d/];

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// contexts are the browser contexts by name: {context, page, problems}.
const contexts = new Map();

// reportCSP runs in every page before its scripts: a CSP violation is
// reported to the driver through the binding.
function reportCSP() {
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__hissunoCSP(`${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
  });
}

async function newContext(browser, cmd) {
  if (contexts.has(cmd.ctx)) throw new Error(`context ${cmd.ctx} exists`);
  const context = await browser.newContext({
    viewport: { width: cmd.width, height: cmd.height },
    timezoneId: cmd.timezoneId || 'UTC',
    locale: cmd.locale || 'en-US',
    acceptDownloads: true,
  });
  if (cmd.clipboardOrigin) await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cmd.clipboardOrigin });
  context.setDefaultTimeout(TIMEOUT);
  const c = { context, page: null, problems: [] };
  await context.exposeBinding('__hissunoCSP', ({ page }, text) => {
    c.problems.push(`CSP violation on ${page.url()}: ${text}`);
  });
  await context.addInitScript(reportCSP);
  const page = await context.newPage();
  page.on('pageerror', (err) => c.problems.push(`uncaught exception on ${page.url()}: ${err.stack || err}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (IGNORED.some((re) => re.test(text))) return;
    c.problems.push(`console error on ${page.url()}: ${text}`);
  });
  c.page = page;
  contexts.set(cmd.ctx, c);
  return null;
}

function pageOf(cmd) {
  const c = contexts.get(cmd.ctx);
  if (!c) throw new Error(`no context ${cmd.ctx}`);
  return c.page;
}

// settle waits until the page's parts have loaded: no loading state in
// main, and a signed-in page has shown who is signed in.
async function settle(page, timeout) {
  await page.waitForFunction(() => {
    if (document.readyState !== 'complete') return false;
    if (document.querySelector('main .state-loading')) return false;
    if (document.body.dataset.page !== 'sign-in' && document.body.dataset.page !== 'not-found' && !document.body.dataset.role) return false;
    return true;
  }, null, { timeout, polling: 50 });
}

// axe runs axe-core on the page (or the elements of include) and returns
// its serious and critical violations. It is evaluated through the
// DevTools protocol, which the page's CSP does not govern, so the page's
// own policy stays on for everything else.
async function axe(page, include) {
  const has = await page.evaluate(() => typeof window.axe === 'object');
  if (!has) await page.evaluate(axeSource);
  const result = await page.evaluate(async (include) => {
    const r = await window.axe.run(include ? { include: [include] } : document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${(n.failureSummary || '').split('\n').slice(0, 3).join(' | ')}`),
    }));
  }, include || null);
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

// focusTrap presses Tab (then Shift+Tab) presses times each in the open
// dialog of selector and reports where focus went.
async function focusTrap(page, selector, presses) {
  const where = () => page.evaluate((sel) => {
    const a = document.activeElement;
    const d = document.querySelector(sel);
    return { inside: !!(d && a && d.contains(a)), what: a ? a.dataset.testid || a.id || a.tagName : '' };
  }, selector);
  const seen = [];
  for (const key of ['Tab', 'Shift+Tab']) {
    for (let i = 0; i < presses; i++) {
      await page.keyboard.press(key);
      seen.push({ key, ...(await where()) });
    }
  }
  return seen;
}

const OPS = {
  // newContext {ctx, width, height, timezoneId?, locale?, clipboardOrigin?}
  newContext: (cmd, browser) => newContext(browser, cmd),
  // viewport {ctx, width, height}
  viewport: (cmd) => pageOf(cmd).setViewportSize({ width: cmd.width, height: cmd.height }),
  // goto {ctx, url}: opens the page and settles it.
  goto: async (cmd) => {
    const page = pageOf(cmd);
    const res = await page.goto(cmd.url, { waitUntil: 'load', timeout: cmd.timeout || TIMEOUT });
    if (!cmd.noSettle) await settle(page, cmd.timeout || TIMEOUT);
    return res ? res.status() : 0;
  },
  reload: async (cmd) => {
    const page = pageOf(cmd);
    await page.reload({ waitUntil: 'load' });
    await settle(page, cmd.timeout || TIMEOUT);
    return null;
  },
  settle: (cmd) => settle(pageOf(cmd), cmd.timeout || TIMEOUT),
  url: (cmd) => pageOf(cmd).url(),
  waitURL: (cmd) => pageOf(cmd).waitForURL(new RegExp(cmd.pattern), { timeout: cmd.timeout || TIMEOUT }),
  click: (cmd) => pageOf(cmd).locator(cmd.sel).first().click({ timeout: cmd.timeout || TIMEOUT }),
  fill: (cmd) => pageOf(cmd).locator(cmd.sel).first().fill(cmd.value),
  check: (cmd) => pageOf(cmd).locator(cmd.sel).first().check(),
  select: (cmd) => pageOf(cmd).locator(cmd.sel).first().selectOption(cmd.value),
  focus: (cmd) => pageOf(cmd).locator(cmd.sel).first().focus(),
  press: (cmd) => pageOf(cmd).keyboard.press(cmd.key),
  // wait {sel, state: visible|hidden|attached|detached}
  wait: (cmd) => pageOf(cmd).locator(cmd.sel).first().waitFor({ state: cmd.state || 'visible', timeout: cmd.timeout || TIMEOUT }),
  // waitText {sel, contains}: the element's text comes to contain it.
  waitText: async (cmd) => {
    await pageOf(cmd).waitForFunction(({ sel, contains }) => {
      const el = document.querySelector(sel);
      return el && el.textContent.includes(contains);
    }, { sel: cmd.sel, contains: cmd.contains }, { timeout: cmd.timeout || TIMEOUT, polling: 50 });
    return pageOf(cmd).locator(cmd.sel).first().innerText();
  },
  text: (cmd) => pageOf(cmd).locator(cmd.sel).first().innerText(),
  texts: (cmd) => pageOf(cmd).locator(cmd.sel).allInnerTexts(),
  attr: (cmd) => pageOf(cmd).locator(cmd.sel).first().getAttribute(cmd.name),
  attrs: (cmd) => pageOf(cmd).locator(cmd.sel).evaluateAll((els, name) => els.map((e) => e.getAttribute(name)), cmd.name),
  value: (cmd) => pageOf(cmd).locator(cmd.sel).first().inputValue(),
  count: (cmd) => pageOf(cmd).locator(cmd.sel).count(),
  visible: (cmd) => pageOf(cmd).locator(cmd.sel).first().isVisible(),
  // eval {expr}: a JavaScript expression evaluated in the page; a promise
  // is awaited. Its value must be JSON.
  eval: (cmd) => pageOf(cmd).evaluate(cmd.expr),
  // everything is the page's markup and every form field's value, to
  // look for a secret in.
  everything: (cmd) => pageOf(cmd).evaluate(() => document.documentElement.outerHTML + '\n' +
    [...document.querySelectorAll('input, textarea')].map((i) => i.value).join('\n') + '\n' + document.body.innerText),
  // layout is what scrolls: the page's width against the viewport's.
  layout: (cmd) => pageOf(cmd).evaluate(() => ({ scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth })),
  // focused is the focused element's testid (else id, else tag) and
  // whether it is inside the element of sel.
  focused: (cmd) => pageOf(cmd).evaluate((sel) => {
    const a = document.activeElement;
    const d = sel ? document.querySelector(sel) : null;
    return { inside: !!(d && a && d.contains(a)), what: a ? a.dataset.testid || a.id || a.tagName : '' };
  }, cmd.sel || ''),
  focusTrap: (cmd) => focusTrap(pageOf(cmd), cmd.sel, cmd.presses || 8),
  axe: (cmd) => axe(pageOf(cmd), cmd.include),
  screenshot: async (cmd) => {
    await pageOf(cmd).screenshot({ path: cmd.path, fullPage: cmd.fullPage !== false, animations: 'disabled', caret: 'hide' });
    return cmd.path;
  },
  // download {sel, path}: clicks the link and saves what it downloads.
  download: async (cmd) => {
    const page = pageOf(cmd);
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: cmd.timeout || TIMEOUT }), page.locator(cmd.sel).first().click()]);
    await dl.saveAs(cmd.path);
    const failure = await dl.failure();
    if (failure) throw new Error(`download failed: ${failure}`);
    return { path: cmd.path, suggestedFilename: dl.suggestedFilename(), url: dl.url() };
  },
  // formPost {url, target}: opens url (a page that submits a form to
  // target at once) and reports the answer to that POST and the request
  // the browser sent: its cookie and Sec-Fetch-Site.
  formPost: async (cmd) => {
    const page = pageOf(cmd);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url() === cmd.target && r.request().method() === 'POST', { timeout: cmd.timeout || TIMEOUT }),
      page.goto(cmd.url, { waitUntil: 'commit' }),
    ]);
    const headers = await res.request().allHeaders();
    await page.waitForLoadState('load');
    return { status: res.status(), cookie: headers.cookie || '', secFetchSite: headers['sec-fetch-site'] || '', origin: headers.origin || '', body: await res.text() };
  },
  problems: (cmd) => {
    const c = contexts.get(cmd.ctx);
    if (!c) throw new Error(`no context ${cmd.ctx}`);
    const out = c.problems;
    c.problems = [];
    return out;
  },
  closeContext: async (cmd) => {
    const c = contexts.get(cmd.ctx);
    if (c) await c.context.close();
    contexts.delete(cmd.ctx);
    return null;
  },
};

async function main() {
  let browser;
  try {
    browser = await chromium.launch({ executablePath: EXECUTABLE, args: ARGS });
  } catch (e) {
    emit({ id: 0, ok: false, error: 'chromium did not start: ' + e.message });
    return 2;
  }
  emit({ id: 0, ok: true, value: browser.version() });
  try {
    for await (const line of createInterface({ input: process.stdin })) {
      if (!line.trim()) continue;
      let cmd;
      try {
        cmd = JSON.parse(line);
      } catch (e) {
        emit({ id: -1, ok: false, error: 'not JSON: ' + e.message });
        continue;
      }
      if (cmd.op === 'quit') break;
      const op = OPS[cmd.op];
      if (!op) {
        emit({ id: cmd.id, ok: false, error: `no op ${cmd.op}` });
        continue;
      }
      try {
        const value = await op(cmd, browser);
        emit({ id: cmd.id, ok: true, value: value === undefined ? null : value });
      } catch (e) {
        emit({ id: cmd.id, ok: false, error: String(e && e.message ? e.message : e) });
      }
    }
  } finally {
    await browser.close();
  }
  return 0;
}

process.exitCode = await main();
