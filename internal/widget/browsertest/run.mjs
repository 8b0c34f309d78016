// Drives Debian's chromium through one widget scenario for
// widget/browser_test.go.
//
//   node run.mjs CONFIG.json
//
// CONFIG: {"name", "screenshotDir", "timeoutMs", "steps": [...]}, each step
// one of
//   {"do": "goto", "url"}                 open a page
//   {"do": "reload"}                      reload it (a visitor's next page view)
//   {"do": "waitState", "state", "reason"?, "timeoutMs"?}
//                                         poll window.Hissuno until it holds
//   {"do": "expectWidget", "shown", "text"?}
//                                         #hissuno-widget is (not) visible, with text
//   {"do": "expectWarning", "contains"}   a console.warn so far contains it
//   {"do": "waitRefresh", "count", "timeoutMs"?}
//                                         the widget refreshed its token count
//                                         times before exp and is ready again
//   {"do": "expectNoInterruption"}        once shown, the widget never left
//                                         the page nor its ready state
//   {"do": "screenshot", "name"}          save screenshotDir/NAME.png
//   {"do": "pause", "name"}               print {"event":"pause"} and wait for
//                                         a line on stdin (the Go test acts)
//
// Each step records what it saw. Stdout carries JSON lines: pauses, then one
// {"event":"result", ...}. The exit code is 0 when every step held, 1 when
// one did not, 2 when the config or the browser is broken.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const EXECUTABLE = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--disable-quic",
];

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// The trace records every change of the widget element, from before the
// page's scripts run: whether it is on the page and its data-state.
function installTrace() {
  window.__hissunoTrace = [];
  let last = "";
  const record = () => {
    const el = document.getElementById("hissuno-widget");
    const now = el ? "shown:" + el.getAttribute("data-state") : "absent";
    if (now !== last) {
      last = now;
      window.__hissunoTrace.push({ at: Date.now(), widget: now });
    }
  };
  new MutationObserver(record).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ["data-state"],
  });
}

async function observe(page) {
  const seen = await page.evaluate(() => {
    const H = window.Hissuno;
    const el = document.getElementById("hissuno-widget");
    return {
      state: H ? H.state : "",
      reason: H && H.decision ? H.decision.reason || "" : "",
      decision: H ? H.decision : null,
      stats: H ? H.stats : null,
      history: H ? H.history : [],
      decisions: H ? H.decisions : [],
      widgetText: el ? el.innerText : "",
      widgetState: el ? el.getAttribute("data-state") : "",
      trace: window.__hissunoTrace || [],
    };
  });
  seen.shown = await page.locator("#hissuno-widget").isVisible();
  return seen;
}

async function main() {
  const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const defaultTimeout = config.timeoutMs || 20000;
  const result = {
    event: "result",
    name: config.name,
    ok: false,
    error: "",
    steps: [],
    warnings: [],
    console: [],
    pageErrors: [],
    screenshots: [],
    requests: { token: 0, connect: 0, widgetJs: 0 },
  };

  let browser;
  try {
    browser = await chromium.launch({ executablePath: EXECUTABLE, args: ARGS });
  } catch (e) {
    result.error = "chromium did not start: " + e.message;
    emit(result);
    return 2;
  }
  try {
    const context = await browser.newContext({ viewport: { width: 1000, height: 720 } });
    const page = await context.newPage();
    await page.addInitScript(installTrace);
    page.on("console", (msg) => {
      const entry = { type: msg.type(), text: msg.text() };
      result.console.push(entry);
      if (entry.type === "warning") {
        result.warnings.push(entry.text);
      }
    });
    page.on("pageerror", (err) => result.pageErrors.push(String(err)));
    page.on("request", (req) => {
      const path = new URL(req.url()).pathname;
      if (path === "/api/hissuno-token") result.requests.token++;
      if (path === "/v1/widget/connect" && req.method() === "POST") result.requests.connect++;
      if (path === "/widget.js") result.requests.widgetJs++;
    });

    for (const step of config.steps) {
      const rec = { do: step.do, name: step.name || "", ok: false, error: "", observed: null };
      result.steps.push(rec);
      const timeout = step.timeoutMs || defaultTimeout;
      try {
        switch (step.do) {
          case "goto":
            await page.goto(step.url, { waitUntil: "load", timeout });
            break;
          case "reload":
            await page.reload({ waitUntil: "load", timeout });
            break;
          case "waitState":
            await page.waitForFunction(
              ({ state, reason }) =>
                window.Hissuno &&
                window.Hissuno.state === state &&
                (!reason || (window.Hissuno.decision && window.Hissuno.decision.reason === reason)),
              { state: step.state, reason: step.reason || "" },
              { timeout, polling: 50 },
            );
            break;
          case "expectWidget": {
            const seen = await observe(page);
            if (seen.shown !== step.shown) {
              throw new Error(`widget ${seen.shown ? "shown" : "not shown"}, want ${step.shown ? "shown" : "not shown"}`);
            }
            if (step.text && !seen.widgetText.includes(step.text)) {
              throw new Error(`widget text ${JSON.stringify(seen.widgetText)} lacks ${JSON.stringify(step.text)}`);
            }
            break;
          }
          case "expectWarning":
            if (!result.warnings.some((w) => w.includes(step.contains))) {
              throw new Error(`no console warning contains ${JSON.stringify(step.contains)}; warnings: ${JSON.stringify(result.warnings)}`);
            }
            break;
          case "waitRefresh":
            await page.waitForFunction(
              (count) => {
                const H = window.Hissuno;
                return (
                  H &&
                  H.stats.refreshes >= count &&
                  H.state === "ready" &&
                  H.history.filter((h) => h.state === "ready").length >= count + 1
                );
              },
              step.count || 1,
              { timeout, polling: 50 },
            );
            break;
          case "expectNoInterruption": {
            const seen = await observe(page);
            const first = seen.trace.findIndex((e) => e.widget === "shown:ready");
            if (first < 0) {
              throw new Error("the widget was never shown ready");
            }
            const after = seen.trace.slice(first).filter((e) => e.widget !== "shown:ready");
            if (after.length) {
              throw new Error("the widget was interrupted: " + JSON.stringify(after));
            }
            const h = seen.history.findIndex((e) => e.state === "ready");
            const bad = seen.history.slice(h).filter((e) => e.state !== "ready");
            if (bad.length) {
              throw new Error("the widget's state left ready: " + JSON.stringify(bad));
            }
            break;
          }
          case "screenshot": {
            const path = join(config.screenshotDir, step.name + ".png");
            await page.screenshot({ path });
            result.screenshots.push(path);
            break;
          }
          case "pause":
            emit({ event: "pause", name: step.name });
            if ((await stdinLines.next()).done) {
              throw new Error("stdin closed during pause " + step.name);
            }
            break;
          default:
            throw new Error("unknown step " + JSON.stringify(step.do));
        }
        rec.ok = true;
      } catch (e) {
        rec.error = e.message.split("\n")[0];
        result.error = `step ${result.steps.length} (${step.do} ${step.name || step.state || step.url || ""}): ${rec.error}`;
      }
      try {
        rec.observed = await observe(page);
      } catch (e) {
        rec.observed = { error: e.message };
      }
      if (!rec.ok) {
        try {
          const path = join(config.screenshotDir, config.name + "-failure.png");
          await page.screenshot({ path });
          result.screenshots.push(path);
        } catch {}
        break;
      }
    }
    if (!result.error && result.pageErrors.length) {
      result.error = "the page threw: " + result.pageErrors.join("; ");
    }
    result.ok = !result.error;
  } finally {
    await browser.close();
  }
  emit(result);
  return result.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    emit({ event: "result", ok: false, error: "run.mjs: " + (e && e.stack ? e.stack : e) });
    process.exit(2);
  },
);
