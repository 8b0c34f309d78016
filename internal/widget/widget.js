/*
 * Hissuno widget loader. Served by the ingress at /widget.js; no dependencies.
 *
 *   <script src="https://INGRESS/widget.js"></script>
 *   <script>
 *     Hissuno.init({
 *       projectId: "proj_…",
 *       tokenUrl: "/api/hissuno-token",   // your backend: GET → {"token": "…"}
 *       widgetToken: "…",                 // or a token rendered into the page
 *       userId: "u-1", userMetadata: {name: "Ada"},
 *       target: "#support",               // optional: render inside this element
 *       onStateChange: function (state, decision) {},  // optional
 *       onDecision: function (decision, httpStatus) {}, // optional: every answer
 *     });
 *   </script>
 *
 * Or without code: <script src="https://INGRESS/widget.js"
 *   data-project-id="proj_…" data-token-url="/api/hissuno-token"
 *   data-user-id="u-1" data-user-metadata='{"name":"Ada"}'></script>
 *
 * It asks the ingress (the origin this script came from, or the `ingress`
 * option) whether it may connect: POST /v1/widget/connect. On accept it
 * renders; on a blocked origin or any other refusal it does not render and
 * logs a console warning naming the reason. An expired token, or one signed
 * with a rotated key, is replaced by a fresh one from tokenUrl and retried at
 * once, then with back-off until the site's endpoint mints a token that
 * works. Before a token expires it fetches a fresh one and reconnects
 * quietly (the docs' "Token Refresh").
 *
 * State for pages and tests: Hissuno.state ("connecting" | "ready" |
 * "blocked" | "unauthorized" | "retrying" | "error"), Hissuno.decision (the
 * last answer of the ingress), Hissuno.decisions (the last 20, in order),
 * Hissuno.history (states), Hissuno.stats (counters, the current token's
 * exp), and the data-state attribute of #hissuno-widget while it is shown.
 *
 * The token is never logged, never shown and never exposed on Hissuno.
 */
(function () {
  "use strict";

  var VERSION = "1.0.0";
  var CONNECT_PATH = "/v1/widget/connect";
  var ELEMENT_ID = "hissuno-widget";
  // Back-off between retries, in seconds; the last one repeats.
  var RETRY_DELAYS = [2, 5, 10, 30];
  // MAX_RETRY_AFTER_SECONDS caps the wait a Retry-After may ask for.
  var MAX_RETRY_AFTER_SECONDS = 300;
  // A token is refreshed this long before its exp, or at 80 % of its
  // remaining lifetime when that is earlier.
  var REFRESH_MARGIN_SECONDS = 60;
  var REFRESH_FRACTION = 0.8;
  // Never refresh more often than this, whatever the clocks say.
  var MIN_REFRESH_SECONDS = 5;
  // setTimeout overflows past 2^31-1 ms.
  var MAX_TIMEOUT_MS = 2147483647;
  // Refusals a fresh token from tokenUrl can cure: an expired token, one
  // signed with a key a rotation retired, one issued before a revocation.
  var REFRESHABLE = {
    token_expired: true,
    token_bad_signature: true,
    token_revoked: true,
  };

  var script = document.currentScript;
  var scriptOrigin = "";
  if (script && script.src) {
    try {
      scriptOrigin = new URL(script.src, document.baseURI).origin;
    } catch (e) {
      scriptOrigin = "";
    }
  }

  var api = window.Hissuno && window.Hissuno.__loaded ? window.Hissuno : {};
  if (api.__loaded) {
    return; // loaded twice: keep the first
  }

  // Current widget; a new init or destroy replaces it.
  var current = null;

  function warn(msg) {
    if (window.console && console.warn) {
      console.warn(msg);
    }
  }

  function setState(w, state, decision) {
    if (decision !== undefined) {
      api.decision = decision;
    }
    var reason = api.decision && api.decision.reason ? api.decision.reason : "";
    var changed = api.state !== state;
    api.state = state;
    var el = document.getElementById(ELEMENT_ID);
    if (el) {
      el.setAttribute("data-state", state);
    }
    api.history.push({ state: state, reason: reason, at: Date.now() });
    if (api.history.length > 100) {
      api.history.shift();
    }
    if (changed && typeof w.opts.onStateChange === "function") {
      try {
        w.opts.onStateChange(state, api.decision);
      } catch (e) {
        warn("Hissuno widget: onStateChange threw: " + e);
      }
    }
  }

  // claims decodes a JWT's payload; only exp and iat are read.
  function claims(token) {
    try {
      var part = token.split(".")[1];
      var b64 = part.replace(/-/g, "+").replace(/_/g, "/");
      while (b64.length % 4) {
        b64 += "=";
      }
      var p = JSON.parse(atob(b64));
      return {
        exp: typeof p.exp === "number" ? p.exp : null,
        iat: typeof p.iat === "number" ? p.iat : null,
      };
    } catch (e) {
      return { exp: null, iat: null };
    }
  }

  function whenBody(fn) {
    if (document.body) {
      fn();
    } else {
      document.addEventListener("DOMContentLoaded", fn, { once: true });
    }
  }

  function render(w, decision) {
    whenBody(function () {
      if (current !== w) {
        return;
      }
      var el = document.getElementById(ELEMENT_ID);
      if (!el) {
        el = document.createElement("div");
        el.id = ELEMENT_ID;
        el.setAttribute("role", "complementary");
        el.setAttribute("aria-label", "Hissuno support");
        var title = document.createElement("div");
        title.className = "hissuno-title";
        title.textContent = "Hissuno support";
        title.style.cssText = "font-weight:600;font-size:15px;margin-bottom:4px";
        var who = document.createElement("div");
        who.className = "hissuno-user";
        who.style.cssText = "font-size:13px;opacity:.85";
        var hint = document.createElement("div");
        hint.className = "hissuno-hint";
        hint.textContent = "How can we help?";
        hint.style.cssText = "font-size:13px;margin-top:8px";
        el.appendChild(title);
        el.appendChild(who);
        el.appendChild(hint);
        var target = resolveTarget(w.opts.target);
        var base =
          "box-sizing:border-box;width:260px;padding:14px 16px;border-radius:12px;" +
          "background:#1f2a44;color:#fff;font-family:system-ui,-apple-system,sans-serif;" +
          "box-shadow:0 6px 24px rgba(0,0,0,.25);";
        if (target) {
          el.style.cssText = base;
          target.appendChild(el);
        } else {
          el.style.cssText = base + "position:fixed;right:20px;bottom:20px;z-index:2147483000";
          document.body.appendChild(el);
        }
      }
      el.setAttribute("data-state", "ready");
      el.setAttribute("data-session", decision.session || "");
      var name = decision.userMetadata && decision.userMetadata.name;
      var text;
      if (decision.session === "authenticated") {
        text = name ? "Signed in as " + name + " (" + decision.userId + ")" : "Signed in as " + decision.userId;
      } else if (decision.userId) {
        text = decision.userId + " (unverified)";
      } else {
        text = "anonymous visitor";
      }
      el.querySelector(".hissuno-user").textContent = text;
    });
  }

  function unrender() {
    var el = document.getElementById(ELEMENT_ID);
    if (el && el.parentNode) {
      el.parentNode.removeChild(el);
    }
  }

  function resolveTarget(target) {
    if (!target) {
      return null;
    }
    if (typeof target === "string") {
      var el = document.querySelector(target);
      if (!el) {
        warn("Hissuno widget: target " + target + " not found; rendering in the corner instead");
      }
      return el;
    }
    return target.appendChild ? target : null;
  }

  function describe(decision) {
    var s = decision.reason || decision.decision || "unknown";
    if (decision.message) {
      s += " (" + decision.message + ")";
    }
    return s;
  }

  // Widget is one init's connection life: connect, retry, refresh.
  function Widget(opts) {
    this.opts = opts;
    this.token = opts.widgetToken || "";
    this.timer = null;
    this.refreshAt = 0;
    this.retries = 0;
    // How far the visitor's clock is ahead of the site's, in ms, when a
    // fresh token's iat says it is off by more than a minute.
    this.skewMs = 0;
    this.gen = 0; // bumped to abandon whatever is in flight
    this.onVisible = this.checkOverdue.bind(this);
    document.addEventListener("visibilitychange", this.onVisible);
  }

  Widget.prototype.stop = function () {
    this.gen++;
    clearTimeout(this.timer);
    this.timer = null;
    this.refreshAt = 0;
    document.removeEventListener("visibilitychange", this.onVisible);
  };

  Widget.prototype.live = function (gen) {
    return current === this && this.gen === gen;
  };

  // start connects, fetching a token first when there is a tokenUrl and no token.
  Widget.prototype.start = function () {
    clearTimeout(this.timer);
    this.refreshAt = 0;
    var gen = ++this.gen;
    this.retries = 0;
    setState(this, "connecting");
    this.cycle(gen, !this.token && !!this.opts.tokenUrl, false);
  };

  // cycle fetches a fresh token when asked, then connects. quiet keeps the
  // widget shown through transient failures (a refresh before exp).
  Widget.prototype.cycle = function (gen, fetchFirst, quiet) {
    var w = this;
    var ready = fetchFirst ? w.fetchToken(gen) : Promise.resolve({ ok: true });
    ready
      .then(function (got) {
        if (!w.live(gen)) {
          return null;
        }
        if (!got.ok) {
          if (got.final) {
            unrender();
            setState(w, "unauthorized");
            warn("Hissuno widget not shown: " + got.why);
            return null;
          }
          return w.retry(gen, quiet, "could not fetch a token: " + got.why);
        }
        return w.connect(gen).then(function (res) {
          if (w.live(gen)) {
            w.handle(gen, res, fetchFirst, quiet);
          }
        });
      })
      .catch(function (e) {
        if (w.live(gen)) {
          w.retry(gen, quiet, "unexpected error: " + (e && e.message ? e.message : e));
        }
      });
  };

  Widget.prototype.fetchToken = function (gen) {
    var w = this;
    api.stats.tokenFetches++;
    api.stats.lastTokenFetchAt = Date.now();
    return fetch(w.opts.tokenUrl, {
      method: "GET",
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    }).then(
      function (res) {
        if (res.status === 401 || res.status === 403) {
          return { ok: false, final: true, why: w.opts.tokenUrl + " answered HTTP " + res.status + " (is the visitor signed in?)" };
        }
        if (!res.ok) {
          return { ok: false, why: w.opts.tokenUrl + " answered HTTP " + res.status };
        }
        return res.json().then(
          function (body) {
            if (!body || typeof body.token !== "string" || body.token === "") {
              return { ok: false, why: w.opts.tokenUrl + ' did not answer {"token": "…"}' };
            }
            if (w.live(gen)) {
              w.token = body.token;
              var iat = claims(body.token).iat;
              var skew = iat ? Date.now() - iat * 1000 : 0;
              w.skewMs = Math.abs(skew) > 60000 ? skew : 0;
            }
            return { ok: true };
          },
          function () {
            return { ok: false, why: w.opts.tokenUrl + " did not answer JSON" };
          }
        );
      },
      function () {
        return { ok: false, why: w.opts.tokenUrl + " could not be reached" };
      }
    );
  };

  // connect asks the ingress; it resolves to {status, body} (status 0: no answer).
  Widget.prototype.connect = function () {
    var o = this.opts;
    var body = { projectId: o.projectId };
    if (this.token) {
      body.widgetToken = this.token;
    }
    if (o.userId) {
      body.userId = String(o.userId);
    }
    if (o.userMetadata) {
      body.userMetadata = o.userMetadata;
    }
    api.stats.connects++;
    return fetch(o.ingress + CONNECT_PATH, {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).then(
      function (res) {
        return res.json().then(
          function (b) {
            return { status: res.status, body: b || {}, retryAfter: retryAfter(res) };
          },
          function () {
            return { status: res.status, body: {}, retryAfter: retryAfter(res) };
          }
        );
      },
      function () {
        return { status: 0, body: {} };
      }
    );
  };

  // handle acts on the ingress's answer, then tells onDecision.
  Widget.prototype.handle = function (gen, res, fetched, quiet) {
    api.decisions.push({ status: res.status, decision: res.body.decision || "", reason: res.body.reason || "", at: Date.now() });
    if (api.decisions.length > 20) {
      api.decisions.shift();
    }
    this.act(gen, res, fetched, quiet);
    if (typeof this.opts.onDecision === "function") {
      try {
        this.opts.onDecision(res.body, res.status);
      } catch (e) {
        warn("Hissuno widget: onDecision threw: " + e);
      }
    }
  };

  Widget.prototype.act = function (gen, res, fetched, quiet) {
    var b = res.body;
    if (res.status === 200 && b.decision === "accept") {
      this.retries = 0;
      api.stats.tokenExp = this.token ? claims(this.token).exp : null;
      render(this, b);
      setState(this, "ready", b);
      this.scheduleRefresh(gen);
      return;
    }
    if (res.status === 403 && b.decision === "origin_blocked") {
      unrender();
      setState(this, "blocked", b);
      warn("Hissuno widget blocked: " + describe(b));
      return;
    }
    if (res.status === 401 && b.decision === "unauthorized") {
      if (REFRESHABLE[b.reason] && this.opts.tokenUrl) {
        if (!fetched) {
          // The single immediate retry, with a fresh token.
          api.decision = b;
          this.cycle(gen, true, false);
          return;
        }
        api.decision = b;
        this.retry(gen, false, b.reason, b);
        return;
      }
      unrender();
      setState(this, "unauthorized", b);
      warn("Hissuno widget not shown: " + describe(b));
      return;
    }
    if (res.status === 400) {
      unrender();
      setState(this, "error", b);
      warn("Hissuno widget not shown: the ingress refused the request: " + (b.error || "HTTP 400"));
      return;
    }
    // 503, 5xx, 429, no answer: the service is busy or unreachable. A 429
    // (rate limited) backs off like a 503, and at least its Retry-After.
    this.retry(gen, quiet, res.status ? "the ingress answered HTTP " + res.status + (b.error ? ": " + b.error : "") : "the ingress could not be reached", undefined, res.retryAfter);
  };

  // retryAfter is a response's Retry-After in seconds (0 when none), at
  // most MAX_RETRY_AFTER_SECONDS: the ingress exposes it to CORS.
  function retryAfter(res) {
    var v = res.headers && res.headers.get ? Number(res.headers.get("Retry-After")) : 0;
    return v > 0 && isFinite(v) ? Math.min(v, MAX_RETRY_AFTER_SECONDS) : 0;
  }

  // retry schedules the next cycle with back-off, fetching a fresh token
  // first when there is a tokenUrl. A quiet retry keeps a shown widget shown.
  Widget.prototype.retry = function (gen, quiet, why, decision, minSecs) {
    var w = this;
    var secs = Math.max(RETRY_DELAYS[Math.min(w.retries, RETRY_DELAYS.length - 1)], minSecs || 0);
    w.retries++;
    var ms = Math.round(secs * 1000 * (1 + Math.random() * 0.2));
    if (!(quiet && api.state === "ready")) {
      var was = api.state;
      unrender();
      setState(w, "retrying", decision);
      if (was !== "retrying" || w.retries === 1) {
        warn("Hissuno widget not shown: " + (decision ? describe(decision) : why) + "; retrying in " + secs + " s");
      }
    }
    clearTimeout(w.timer);
    w.timer = setTimeout(function () {
      if (w.live(gen)) {
        w.cycle(gen, !!w.opts.tokenUrl, quiet && api.state === "ready");
      }
    }, ms);
  };

  // scheduleRefresh fetches a fresh token before the current one expires
  // and reconnects quietly.
  Widget.prototype.scheduleRefresh = function (gen) {
    var w = this;
    clearTimeout(w.timer);
    w.refreshAt = 0;
    var exp = api.stats.tokenExp;
    if (!w.opts.tokenUrl || !exp) {
      return;
    }
    var left = exp - (Date.now() - w.skewMs) / 1000;
    var margin = typeof w.opts.refreshMarginSeconds === "number" ? w.opts.refreshMarginSeconds : REFRESH_MARGIN_SECONDS;
    var secs = Math.max(MIN_REFRESH_SECONDS, Math.min(left - margin, left * REFRESH_FRACTION));
    var ms = Math.min(secs * 1000, MAX_TIMEOUT_MS);
    w.refreshAt = Date.now() + ms;
    w.timer = setTimeout(function () {
      w.refreshNow(gen);
    }, ms);
  };

  Widget.prototype.refreshNow = function (gen) {
    if (!this.live(gen)) {
      return;
    }
    this.refreshAt = 0;
    api.stats.refreshes++;
    api.stats.lastRefreshAt = Date.now();
    this.cycle(gen, true, true);
  };

  // checkOverdue runs a refresh that a sleeping tab's timer missed.
  Widget.prototype.checkOverdue = function () {
    if (document.visibilityState === "visible" && this.refreshAt && Date.now() >= this.refreshAt) {
      clearTimeout(this.timer);
      this.refreshNow(this.gen);
    }
  };

  function options(o) {
    o = o || {};
    var out = {};
    for (var k in o) {
      if (Object.prototype.hasOwnProperty.call(o, k) && o[k] !== null && o[k] !== undefined) {
        out[k] = o[k];
      }
    }
    out.ingress = String(out.ingress || scriptOrigin).replace(/\/+$/, "");
    return out;
  }

  api.__loaded = true;
  api.version = VERSION;
  api.state = "idle";
  api.decision = null;
  api.history = [];
  api.decisions = [];
  api.stats = { tokenFetches: 0, connects: 0, refreshes: 0, lastTokenFetchAt: 0, lastRefreshAt: 0, tokenExp: null };

  // init starts the widget; a second init replaces the first.
  api.init = function (opts) {
    if (current) {
      current.stop();
    }
    unrender();
    var o = options(opts);
    var w = new Widget(o);
    current = w;
    if (!o.projectId) {
      setState(w, "error", null);
      warn("Hissuno widget not shown: Hissuno.init needs a projectId");
      return api;
    }
    if (!o.ingress) {
      setState(w, "error", null);
      warn("Hissuno widget not shown: cannot tell where widget.js came from; pass the ingress option");
      return api;
    }
    w.start();
    return api;
  };

  // refresh reconnects now, with a fresh token when there is a tokenUrl
  // (e.g. after the visitor signs in).
  api.refresh = function () {
    if (!current || !current.opts.projectId || !current.opts.ingress) {
      return api;
    }
    if (current.opts.tokenUrl) {
      current.token = "";
    }
    current.start();
    return api;
  };

  // destroy stops the widget and removes it.
  api.destroy = function () {
    if (current) {
      current.stop();
      current = null;
    }
    unrender();
    api.state = "idle";
    return api;
  };

  window.Hissuno = api;

  // The no-code embed: data- attributes on the script tag.
  if (script && script.getAttribute("data-project-id")) {
    var meta;
    var rawMeta = script.getAttribute("data-user-metadata");
    if (rawMeta) {
      try {
        meta = JSON.parse(rawMeta);
      } catch (e) {
        warn("Hissuno widget: data-user-metadata is not JSON; ignored");
      }
    }
    api.init({
      projectId: script.getAttribute("data-project-id"),
      widgetToken: script.getAttribute("data-widget-token"),
      tokenUrl: script.getAttribute("data-token-url"),
      userId: script.getAttribute("data-user-id"),
      userMetadata: meta,
      target: script.getAttribute("data-target"),
      ingress: script.getAttribute("data-ingress"),
    });
  }
})();
