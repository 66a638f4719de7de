/* The page of a proFit study: plain DOM and SVG, no library, no network access but the study's own.
 *
 * Live mode (served by `profit ui`): fetches "api/snapshot" + location.search every 2 s and draws it again,
 * keeping the reader's choices (sort, state filter, axes, table page). Run logs: "log/<id>" + location.search.
 * Report mode (`profit report`): the snapshot is in <script id="profit-data" type="application/json">,
 * with "logs": {run id: text}; nothing is fetched.
 */
(function () {
  "use strict";

  // --- errors: every JS error and console.error also goes into #console-errors (tests read it) ---------------
  var errorSink = document.getElementById("console-errors");
  function recordError(text) {
    if (!errorSink) errorSink = document.getElementById("console-errors");
    if (errorSink) errorSink.textContent += text + "\n";
  }
  window.addEventListener("error", function (event) {
    var where = event.filename ? " (" + event.filename + ":" + event.lineno + ")" : "";
    recordError("error: " + (event.message || String(event.error)) + where);
  });
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    recordError("unhandled rejection: " + (reason && reason.stack ? reason.stack : String(reason)));
  });
  var originalConsoleError = console.error;
  console.error = function () {
    var parts = [];
    for (var i = 0; i < arguments.length; i++) {
      var a = arguments[i];
      parts.push(a instanceof Error ? (a.stack || String(a)) : typeof a === "object" ? safeJson(a) : String(a));
    }
    recordError(parts.join(" "));
    return originalConsoleError.apply(console, arguments);
  };
  function safeJson(value) {
    try { return JSON.stringify(value); } catch (e) { return String(value); }
  }

  // --- constants and state --------------------------------------------------------------------------------------
  var STATES = ["pending", "running", "done", "failed", "cancelled"];
  var STATE_ORDER = { pending: 0, running: 1, done: 2, failed: 3, cancelled: 4 };
  var PAGE_SIZE = 100;
  var MAX_POINTS = 3000;      // scatter points drawn at most (evenly sampled beyond)
  var MAX_FAIL_MARKS = 1000;  // failed-run crosses drawn at most
  var POLL_MS = 2000;
  var SVGNS = "http://www.w3.org/2000/svg";
  var MARGIN = { left: 64, right: 18, top: 14, bottom: 50 };

  var ui = { sortKey: "run", sortDir: 1, filter: "all", x: null, y: null, page: 0 };
  var data = null;          // the current snapshot
  var embeddedLogs = null;  // report mode: {run id: text}
  var mode = "live";
  var renders = 0;
  var orderCache = { data: null, key: "", order: null };

  // --- small helpers --------------------------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] != null) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs, parent) {
    var node = document.createElementNS(SVGNS, tag);
    if (attrs) for (var k in attrs) if (attrs[k] != null) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function svgText(parent, x, y, text, attrs) {
    var node = svgEl("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    node.textContent = text;
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function finite(v) { return typeof v === "number" && isFinite(v); }
  function pad2(n) { return (n < 10 ? "0" : "") + n; }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function grouped(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f"); }

  function fmtNumber(v) {
    if (v === null || v === undefined) return "—";
    if (typeof v !== "number") return String(v);
    if (!isFinite(v)) return "—";
    if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
    return String(Number(v.toPrecision(5)));
  }
  function fmtDate(t) {
    if (!finite(t)) return "—";
    var d = new Date(t * 1000);
    return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " +
      pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }
  function fmtDuration(s) {
    if (!finite(s)) return "—";
    if (s < 1) return (s * 1000).toPrecision(3).replace(/\.?0+$/, "") + " ms";
    if (s < 60) return s.toPrecision(3).replace(/\.0+$|(\.\d*?)0+$/, "$1") + " s";
    var m = Math.floor(s / 60), sec = Math.round(s % 60);
    if (s < 3600) return m + " min " + sec + " s";
    var h = Math.floor(s / 3600);
    if (s < 86400) return h + " h " + Math.round((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.round((s % 86400) / 3600) + " h";
  }
  function fmtRate(r) {
    if (!finite(r) || r <= 0) return "—";
    if (r >= 1) return Number(r.toPrecision(3)) + " runs/s";
    if (r * 60 >= 1) return Number((r * 60).toPrecision(3)) + " runs/min";
    return Number((r * 3600).toPrecision(3)) + " runs/h";
  }

  // Ticks at 1, 2, 5 x 10^k steps, about `count` of them over [lo, hi].
  function niceStep(span, count) {
    var raw = span / Math.max(count, 1);
    var step = Math.pow(10, Math.floor(Math.log10(raw)));
    var err = raw / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    return step;
  }
  function widen(lo, hi) {
    if (!finite(lo) || !finite(hi)) return [0, 1];
    if (hi > lo) return [lo, hi];
    var d = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    return [lo - d, hi + d];
  }
  function ticks(lo, hi, count) {
    var step = niceStep(hi - lo, count);
    var out = [];
    var first = Math.ceil(lo / step - 1e-9);
    for (var i = first; i * step <= hi + step * 1e-9 && out.length < 50; i++) out.push(i * step);
    return { values: out, step: step };
  }
  // Ticks from 0 up to the first tick at or above `max` (counts: whole steps only).
  function countTicks(max, count) {
    var step = Math.max(1, niceStep(Math.max(max, 1), count));
    var top = Math.max(step, Math.ceil(max / step) * step);
    var out = [];
    for (var v = 0; v <= top + step * 1e-9; v += step) out.push(v);
    return { values: out, step: step, top: top, format: function (v) { return grouped(Math.round(v)); } };
  }
  function tickFormatter(step) {
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    return function (v) {
      var a = Math.abs(v);
      if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(1);
      return v.toFixed(Math.min(decimals, 10));
    };
  }
  function linear(d0, d1, r0, r1) {
    var k = (r1 - r0) / (d1 - d0 || 1);
    return function (v) { return r0 + (v - d0) * k; };
  }

  // Time ticks at round seconds, minutes, hours or days.
  var TIME_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 2592000];
  function timeTicks(lo, hi, count) {
    var span = hi - lo, step = TIME_STEPS[TIME_STEPS.length - 1];
    for (var i = 0; i < TIME_STEPS.length; i++) if (span / TIME_STEPS[i] <= count) { step = TIME_STEPS[i]; break; }
    var offset = new Date(lo * 1000).getTimezoneOffset() * 60;  // round in local time
    var out = [];
    var first = Math.ceil((lo - offset) / step) * step + offset;
    for (var k = 0; first + k * step <= hi && out.length < 50; k++) out.push(first + k * step);
    var fmt = function (t) {
      var d = new Date(t * 1000);
      var hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
      if (step < 1) return pad2(d.getMinutes()) + ":" + pad2(d.getSeconds()) + "." + Math.floor(d.getMilliseconds() / 100);
      if (step < 60) return hm + ":" + pad2(d.getSeconds());
      if (step < 86400 && span < 86400) return hm;
      if (step < 86400) return (d.getMonth() + 1) + "/" + d.getDate() + " " + hm;
      return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate());
    };
    return { values: out, format: fmt };
  }

  // A chart's size in pixels: as wide as its box (text keeps its size on any screen).
  function dims(container, ratio, maxHeight) {
    var w = Math.round(container.clientWidth || 640);
    w = Math.max(260, Math.min(w, 1400));
    var h = Math.round(Math.max(200, Math.min(w * ratio, maxHeight)));
    return { w: w, h: h, xTickCount: Math.max(3, Math.min(10, Math.floor(w / 95))) };
  }

  // An SVG chart with axes: returns {svg, plot, x, y} (x, y: data -> pixel).
  function chartFrame(container, opts) {
    var W = opts.size.w, H = opts.size.h;
    var svg = svgEl("svg", {
      width: W, height: H,
      viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": opts.label, class: "chart-svg",
      preserveAspectRatio: "xMidYMid meet"
    });
    svgEl("title", null, svg).textContent = opts.label;
    var x0 = MARGIN.left, x1 = W - MARGIN.right, y0 = H - MARGIN.bottom, y1 = MARGIN.top;
    var x = linear(opts.xDomain[0], opts.xDomain[1], x0, x1);
    var y = linear(opts.yDomain[0], opts.yDomain[1], y0, y1);
    var axes = svgEl("g", { class: "axes" }, svg);
    // grid and y ticks
    opts.yTicks.values.forEach(function (v) {
      var py = y(v);
      if (py < y1 - 0.5 || py > y0 + 0.5) return;
      svgEl("line", { x1: x0, x2: x1, y1: py, y2: py, class: "grid" }, axes);
      svgText(axes, x0 - 6, py + 4, opts.yTicks.format(v), { class: "tick", "text-anchor": "end" });
    });
    opts.xTicks.values.forEach(function (v) {
      var px = x(v);
      if (px < x0 - 0.5 || px > x1 + 0.5) return;
      svgEl("line", { x1: px, x2: px, y1: y0, y2: y0 + 5, class: "tick-line" }, axes);
      svgText(axes, px, y0 + 18, opts.xTicks.format(v), { class: "tick", "text-anchor": "middle" });
    });
    svgEl("line", { x1: x0, x2: x1, y1: y0, y2: y0, class: "axis" }, axes);
    svgEl("line", { x1: x0, x2: x0, y1: y0, y2: y1, class: "axis" }, axes);
    svgText(axes, (x0 + x1) / 2, H - 8, opts.xLabel, { class: "axis-label", "text-anchor": "middle" });
    svgText(axes, 0, 0, opts.yLabel, {
      class: "axis-label", "text-anchor": "middle", transform: "translate(14 " + (y0 + y1) / 2 + ") rotate(-90)"
    });
    var plot = svgEl("g", { class: "plot" }, svg);
    container.appendChild(svg);
    return { svg: svg, plot: plot, x: x, y: y, box: { x0: x0, x1: x1, y0: y0, y1: y1 } };
  }
  function emptyNote(container, text) {
    container.appendChild(el("p", { class: "empty" }, text));
  }
  function legend(container, items) {
    var list = el("ul", { class: "legend" });
    items.forEach(function (item) {
      var li = el("li", { class: item.cls });
      li.appendChild(el("span", { class: "swatch " + item.cls, "aria-hidden": "true" }, item.symbol || ""));
      li.appendChild(document.createTextNode(" " + item.text));
      list.appendChild(li);
    });
    container.appendChild(list);
  }

  // --- header ---------------------------------------------------------------------------------------------------
  function renderHeader(status) {
    var counts = status.counts || {};
    STATES.forEach(function (s) { $("count-" + s).textContent = String(counts[s] || 0); });
    var total = status.total || 0;
    $("count-total").textContent = String(total);
    $("study-path").textContent = status.study || status.directory || "study";
    document.title = "proFit: " + (status.directory || status.study || "study");
    var pct = finite(status.finished_percent) ? status.finished_percent : 0;
    $("finished-percent").textContent = (pct >= 99.95 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)) + " % finished";
    var progress = $("progress");
    progress.setAttribute("aria-valuenow", pct.toFixed(1));
    Array.prototype.forEach.call(progress.children, function (seg) {
      var n = counts[seg.getAttribute("data-state")] || 0;
      seg.style.width = (total ? (100 * n / total) : 0) + "%";
      seg.title = n + " " + seg.getAttribute("data-state");
    });

    var line = $("state-line"), state, text;
    var pending = counts.pending || 0, running = counts.running || 0;
    var finishedAny = (counts.done || 0) + (counts.failed || 0) + (counts.cancelled || 0) > 0;
    if (status.running_pid) {
      state = "running";
      text = "Running (pid " + status.running_pid + ")";
      if (finite(status.eta_seconds)) text += " · about " + fmtDuration(status.eta_seconds) + " left";
      if (finite(status.rate_per_second)) text += " · " + fmtRate(status.rate_per_second);
      if (finite(status.started)) text += " · started " + fmtDate(status.started);
    } else if (total === 0) {
      state = "empty";
      text = "No runs in this study yet";
    } else if (pending + running === 0) {
      state = "finished";
      text = "Finished" + (finite(status.ended) ? " " + fmtDate(status.ended) : "");
      if (finite(status.started) && finite(status.ended) && status.ended >= status.started)
        text += " (ran for " + fmtDuration(status.ended - status.started) + ")";
    } else if (finishedAny || finite(status.started)) {
      state = "interrupted";
      text = "Interrupted: " + plural(pending + running, "run") + " left to run (profit run resumes the study)";
    } else {
      state = "not-started";
      text = "Not started: " + plural(pending, "run") + " waiting";
    }
    line.textContent = text;
    line.setAttribute("data-state", state);
    var gen = finite(status.generated) ? fmtDate(status.generated) : "";
    $("generated").textContent = mode === "report" ? "Report of " + gen : (gen ? "Updated " + gen : "");
  }

  // --- throughput -----------------------------------------------------------------------------------------------
  function renderThroughput(snap) {
    var box = $("throughput-chart");
    clear(box);
    var pts = (snap.throughput || []).filter(function (p) { return p && finite(p[0]) && finite(p[1]); });
    if (!pts.length) { emptyNote(box, "No run has finished yet."); return; }
    var status = snap.status || {};
    var first = pts[0][0], last = pts[pts.length - 1][0];
    var t0 = finite(status.started) && status.started <= first ? status.started : first;
    var t1 = last;
    if (status.running_pid && finite(status.generated) && status.generated > t1) t1 = status.generated;
    var xd = widen(t0, t1);
    var size = dims(box, 0.5, 320);
    var maxN = pts[pts.length - 1][1];
    var yt = countTicks(maxN, 5), yMax = yt.top;
    var f = chartFrame(box, {
      label: "Runs finished over time: " + maxN + " by " + fmtDate(last), size: size,
      xDomain: xd, yDomain: [0, yMax],
      xTicks: timeTicks(xd[0], xd[1], size.xTickCount), yTicks: yt,
      xLabel: "time", yLabel: "runs finished"
    });
    var d = "M" + f.x(t0).toFixed(1) + " " + f.y(0).toFixed(1);
    var prev = 0;
    pts.forEach(function (p) {
      d += "L" + f.x(p[0]).toFixed(1) + " " + f.y(prev).toFixed(1);  // a step: the count rises at each end
      d += "L" + f.x(p[0]).toFixed(1) + " " + f.y(p[1]).toFixed(1);
      prev = p[1];
    });
    if (t1 > last) d += "L" + f.x(t1).toFixed(1) + " " + f.y(prev).toFixed(1);
    svgEl("path", { d: d + "L" + f.x(Math.max(t1, last)).toFixed(1) + " " + f.y(0).toFixed(1) + "Z", class: "area" }, f.plot);
    svgEl("path", { d: d, class: "line" }, f.plot);
    var total = status.total || 0;
    if (total > 0 && total <= yMax) {
      var ty = f.y(total);
      svgEl("line", { x1: f.box.x0, x2: f.box.x1, y1: ty, y2: ty, class: "total-line" }, f.plot);
      svgText(f.plot, f.box.x1 - 4, ty - 4, "all " + total + " runs", { class: "note", "text-anchor": "end" });
    }
  }

  // --- durations ------------------------------------------------------------------------------------------------
  function renderDurations(snap) {
    var box = $("durations-chart");
    clear(box);
    var cols = (snap.runs && snap.runs.columns) || {};
    var dur = cols.duration || [], st = cols.state || [];
    var done = [], failed = [];
    for (var i = 0; i < dur.length; i++) {
      var v = dur[i];
      if (!finite(v)) continue;
      if (st[i] === "done") done.push(v); else if (st[i] === "failed") failed.push(v);
    }
    var n = done.length + failed.length;
    if (!n) { emptyNote(box, "No finished run with a known duration yet."); return; }
    var lo = Infinity, hi = -Infinity;
    done.concat(failed).forEach(function (v) { if (v < lo) lo = v; if (v > hi) hi = v; });
    var unit = hi >= 7200 ? ["h", 3600] : hi >= 120 ? ["min", 60] : hi >= 1 ? ["s", 1] : ["ms", 0.001];
    var size = dims(box, 0.5, 320);
    lo /= unit[1]; hi /= unit[1];
    var target = Math.min(40, Math.max(5, Math.ceil(Math.sqrt(n))));
    var step = hi > lo ? niceStep(hi - lo, target) : niceStep(Math.max(Math.abs(hi), 1e-6) * 0.2, 4);
    var b0 = Math.floor(lo / step) * step;
    var nb = Math.max(1, Math.floor((hi - b0) / step + 1e-9) + 1);
    if (nb > 200) nb = 200;
    var cd = new Array(nb).fill(0), cf = new Array(nb).fill(0);
    function bin(v) { return Math.min(nb - 1, Math.max(0, Math.floor((v / unit[1] - b0) / step + 1e-9))); }
    done.forEach(function (v) { cd[bin(v)]++; });
    failed.forEach(function (v) { cf[bin(v)]++; });
    var maxC = 1;
    for (var k = 0; k < nb; k++) maxC = Math.max(maxC, cd[k] + cf[k]);
    var yt = countTicks(maxC, 5), yMax = yt.top;
    var xt = ticks(b0, b0 + nb * step, size.xTickCount);
    var f = chartFrame(box, {
      label: "Histogram of the durations of " + plural(n, "finished run"), size: size,
      xDomain: [b0, b0 + nb * step], yDomain: [0, yMax],
      xTicks: { values: xt.values, format: tickFormatter(xt.step) },
      yTicks: yt,
      xLabel: "duration (" + unit[0] + ")", yLabel: "runs"
    });
    var fmt = tickFormatter(step / 10);
    for (var j = 0; j < nb; j++) {
      var xa = f.x(b0 + j * step), xb = f.x(b0 + (j + 1) * step);
      var w = Math.max(1, xb - xa - 1);
      var label = fmt(b0 + j * step) + "–" + fmt(b0 + (j + 1) * step) + " " + unit[0] + ": ";
      if (cd[j]) {
        var r = svgEl("rect", { x: xa + 0.5, y: f.y(cd[j]), width: w, height: f.y(0) - f.y(cd[j]), class: "bar done" }, f.plot);
        svgEl("title", null, r).textContent = label + plural(cd[j], "done run");
      }
      if (cf[j]) {
        var top = cd[j] + cf[j];
        var r2 = svgEl("rect", { x: xa + 0.5, y: f.y(top), width: w, height: f.y(cd[j]) - f.y(top), class: "bar failed" }, f.plot);
        svgEl("title", null, r2).textContent = label + plural(cf[j], "failed run");
      }
    }
    legend(box, [
      { cls: "done", text: "done (" + done.length + ")" },
      { cls: "failed", text: "failed (" + failed.length + ")" }
    ]);
  }

  // --- failures -------------------------------------------------------------------------------------------------
  function logHref(runId) {
    return mode === "report" ? "#log-" + runId : "log/" + encodeURIComponent(runId) + location.search;
  }
  function logLink(runId, text) {
    var a = el("a", { href: logHref(runId), class: "log-link", "data-run": String(runId) }, text);
    if (mode === "report" && !(embeddedLogs && Object.prototype.hasOwnProperty.call(embeddedLogs, String(runId))))
      a.classList.add("no-log");
    return a;
  }
  function renderFailures(status) {
    var box = $("failures");
    clear(box);
    var groups = status.failure_groups || [];
    if (!groups.length) {
      emptyNote(box, (status.total ? "No run failed or was cancelled." : "No runs yet."));
      return;
    }
    var list = el("ul", { class: "failure-groups" });
    groups.forEach(function (g, index) {
      var li = el("li", { class: "failure-group " + g.state, "data-state": g.state, "data-count": String(g.count) });
      var head = el("div", { class: "group-head" });
      head.appendChild(el("span", { class: "badge " + g.state }, g.state));
      head.appendChild(el("span", { class: "group-count" }, plural(g.count, "run")));
      li.appendChild(head);
      li.appendChild(el("pre", { class: "reason" }, g.reason));
      var runs = g.runs || [];
      var details = el("details", { class: "group-runs" });
      if (index < 3 && runs.length <= 40) details.open = true;
      details.appendChild(el("summary", null, "Runs" + (g.count > runs.length ? " (first " + runs.length + ")" : "") + ": logs"));
      var links = el("p", { class: "run-links" });
      runs.forEach(function (id, i) {
        if (i) links.appendChild(document.createTextNode(" "));
        links.appendChild(logLink(id, "run " + id));
      });
      if (g.count > runs.length)
        links.appendChild(el("span", { class: "muted" }, " … and " + (g.count - runs.length) + " more (see the table)"));
      details.appendChild(links);
      li.appendChild(details);
      list.appendChild(li);
    });
    box.appendChild(list);
  }

  // --- log viewer -----------------------------------------------------------------------------------------------
  var logRequest = 0;
  function openLog(runId) {
    var dialog = $("log-dialog"), text = $("log-text"), raw = $("log-raw");
    $("log-title").textContent = "Log of run " + runId;
    var request = ++logRequest;
    if (mode === "report") {
      raw.hidden = true;
      var has = embeddedLogs && Object.prototype.hasOwnProperty.call(embeddedLogs, String(runId));
      text.textContent = has ? embeddedLogs[String(runId)] : "This report holds no log for run " + runId + ".";
    } else {
      raw.hidden = false;
      raw.setAttribute("href", logHref(runId));
      text.textContent = "Loading…";
      fetch(logHref(runId), { cache: "no-store" }).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status + (response.status === 404 ? ": no log for this run" : ""));
        return response.text();
      }).then(function (body) {
        if (request === logRequest) text.textContent = body || "(the log is empty)";
      }).catch(function (err) {
        if (request === logRequest) text.textContent = "Could not load the log of run " + runId + " (" + err.message + ").";
      });
    }
    if (typeof dialog.showModal === "function") {
      if (!dialog.open) dialog.showModal();
    } else {
      dialog.setAttribute("open", "");
    }
    text.scrollTop = text.scrollHeight;  // the end of a log says the most
  }
  function closeLog() {
    var dialog = $("log-dialog");
    if (typeof dialog.close === "function" && dialog.open) dialog.close(); else dialog.removeAttribute("open");
  }

  // --- scatter --------------------------------------------------------------------------------------------------
  function syncSelect(select, names, current) {
    var have = Array.prototype.map.call(select.options, function (o) { return o.value; });
    if (have.join("\u0000") !== names.join("\u0000")) {
      clear(select);
      names.forEach(function (n) { select.appendChild(el("option", { value: n }, n)); });
    }
    var value = names.indexOf(current) >= 0 ? current : (names[0] || null);
    if (value !== null) select.value = value;
    select.disabled = !names.length;
    return value;
  }
  function renderScatter(snap) {
    var runs = snap.runs || {}, cols = runs.columns || {};
    var inputs = runs.inputs || [], outputs = runs.outputs || [];
    ui.x = syncSelect($("scatter-x"), inputs, ui.x);
    ui.y = syncSelect($("scatter-y"), outputs, ui.y);
    var box = $("scatter-chart");
    clear(box);
    var n = (cols.run || []).length;
    if (!n) { emptyNote(box, "No runs yet."); return; }
    if (!ui.x || !ui.y) { emptyNote(box, ui.x ? "This study has no outputs." : "This study has no inputs."); return; }
    var xs = cols[ui.x] || [], ys = cols[ui.y] || [], st = cols.state || [];
    var good = [], bad = [], missing = 0;
    for (var i = 0; i < n; i++) {
      if (st[i] === "failed") { if (finite(xs[i])) bad.push(i); continue; }
      if (finite(xs[i]) && finite(ys[i])) good.push(i);
      else if (st[i] === "done") missing++;
    }
    if (!good.length && !bad.length) { emptyNote(box, "No results to plot yet."); return; }
    var xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
    good.forEach(function (i) {
      var a = xs[i], b = ys[i];
      if (a < xlo) xlo = a; if (a > xhi) xhi = a; if (b < ylo) ylo = b; if (b > yhi) yhi = b;
    });
    bad.forEach(function (i) { var a = xs[i]; if (a < xlo) xlo = a; if (a > xhi) xhi = a; });
    if (!good.length) { ylo = 0; yhi = 1; }
    var xd = widen(xlo, xhi), yd = widen(ylo, yhi);
    var px = (xd[1] - xd[0]) * 0.03, py = (yd[1] - yd[0]) * 0.05;
    xd = [xd[0] - px, xd[1] + px];
    yd = [yd[0] - py * 2.5, yd[1] + py];  // room along the bottom for the failed runs' crosses
    var size = dims(box, 0.55, 480);
    var xt = ticks(xd[0], xd[1], size.xTickCount), yt = ticks(yd[0], yd[1], Math.max(4, Math.floor(size.h / 60)));
    var shown = sample(good, MAX_POINTS), crosses = sample(bad, MAX_FAIL_MARKS);
    var f = chartFrame(box, {
      label: ui.y + " against " + ui.x + " (" + plural(good.length, "run") + ", " + bad.length + " failed)", size: size,
      xDomain: xd, yDomain: yd,
      xTicks: { values: xt.values, format: tickFormatter(xt.step) },
      yTicks: { values: yt.values, format: tickFormatter(yt.step) },
      xLabel: ui.x, yLabel: ui.y
    });
    if (!good.length)
      svgText(f.plot, (f.box.x0 + f.box.x1) / 2, (f.box.y0 + f.box.y1) / 2, "no run has a finite " + ui.y + " yet",
        { class: "note", "text-anchor": "middle" });
    var many = shown.length > 300;
    var pointsGroup = svgEl("g", { class: "points" + (many ? " many" : "") }, f.plot);
    shown.forEach(function (i) {
      var c = svgEl("circle", { cx: f.x(xs[i]).toFixed(1), cy: f.y(ys[i]).toFixed(1), r: many ? 2.2 : 3.5, class: "point" }, pointsGroup);
      if (!many) svgEl("title", null, c).textContent = "run " + cols.run[i] + ": " + ui.x + " = " + fmtNumber(xs[i]) + ", " + ui.y + " = " + fmtNumber(ys[i]);
    });
    var crossGroup = svgEl("g", { class: "failed-marks" }, f.plot);
    var cy = f.box.y0 - 7, arm = crosses.length > 200 ? 2.5 : 4;
    if (crosses.length > 200) crossGroup.setAttribute("class", "failed-marks many");
    crosses.forEach(function (i) {
      var cx = f.x(xs[i]).toFixed(1);
      var g = svgEl("path", { d: "M" + (cx - arm) + " " + (cy - arm) + "l" + 2 * arm + " " + 2 * arm + "m0 " + -2 * arm + "l" + -2 * arm + " " + 2 * arm, class: "cross" }, crossGroup);
      svgEl("title", null, g).textContent = "run " + cols.run[i] + " failed at " + ui.x + " = " + fmtNumber(xs[i]);
    });
    var items = [{ cls: "done", symbol: "●", text: "runs with a result (" + good.length + (shown.length < good.length ? ", " + shown.length + " drawn" : "") + ")" }];
    items.push({ cls: "failed", symbol: "×", text: "failed runs, at their " + ui.x + " (" + bad.length + (crosses.length < bad.length ? ", " + crosses.length + " drawn" : "") + ")" });
    if (missing) items.push({ cls: "missing", symbol: "", text: missing + " done without a finite " + ui.y + " or " + ui.x });
    legend(box, items);
  }
  function sample(indices, max) {
    if (indices.length <= max) return indices;
    var out = new Array(max), step = indices.length / max;
    for (var k = 0; k < max; k++) out[k] = indices[Math.floor(k * step)];
    return out;
  }

  // --- table ----------------------------------------------------------------------------------------------------
  function tableColumns(runs) {
    var cols = [{ key: "run", label: "run", kind: "num" }];
    (runs.inputs || []).forEach(function (n) { cols.push({ key: n, label: n, kind: "num", group: "input" }); });
    (runs.outputs || []).forEach(function (n) { cols.push({ key: n, label: n, kind: "num", group: "output" }); });
    cols.push({ key: "state", label: "state", kind: "state" });
    cols.push({ key: "reason", label: "reason", kind: "text" });
    cols.push({ key: "duration", label: "duration", kind: "dur" });
    return cols;
  }
  function rowOrder(snap, columns) {
    var runs = snap.runs || {}, c = runs.columns || {};
    var key = ui.sortKey + "|" + ui.sortDir + "|" + ui.filter;
    if (orderCache.data === snap && orderCache.key === key) return orderCache.order;
    var n = (c.run || []).length, st = c.state || [];
    var order = [];
    if (ui.sortKey === "run" && ui.filter === "all") {  // the runs' own order (run ids ascend): no sorting
      order = new Array(n);
      for (var r = 0; r < n; r++) order[r] = ui.sortDir > 0 ? r : n - 1 - r;
      orderCache = { data: snap, key: key, order: order };
      return order;
    }
    for (var i = 0; i < n; i++) if (ui.filter === "all" || st[i] === ui.filter) order.push(i);
    var col = c[ui.sortKey] || [], dir = ui.sortDir;
    var kind = (columns.filter(function (k) { return k.key === ui.sortKey; })[0] || {}).kind;
    var val = kind === "state" ? function (i) { var s = STATE_ORDER[col[i]]; return s === undefined ? null : s; }
      : kind === "text" ? function (i) { return col[i] == null || col[i] === "" ? null : String(col[i]); }
      : function (i) { return finite(col[i]) ? col[i] : null; };
    var keys = new Array(n);
    for (var j = 0; j < order.length; j++) keys[order[j]] = val(order[j]);
    order.sort(function (a, b) {
      var va = keys[a], vb = keys[b];
      if (va === null || vb === null) {
        if (va === vb) return a - b;
        return va === null ? 1 : -1;  // values missing: last either way
      }
      if (va < vb) return -dir;
      if (va > vb) return dir;
      return a - b;
    });
    orderCache = { data: snap, key: key, order: order };
    return order;
  }
  function renderTable(snap) {
    var runs = snap.runs || {}, c = runs.columns || {};
    var columns = tableColumns(runs);
    if (!columns.some(function (k) { return k.key === ui.sortKey; })) { ui.sortKey = "run"; ui.sortDir = 1; }
    var table = $("runs-table");
    var headRow = table.tHead.rows[0];
    var signature = columns.map(function (k) { return k.key; }).join("\u0000");
    if (headRow.getAttribute("data-columns") !== signature) {
      clear(headRow);
      columns.forEach(function (k) {
        var th = el("th", { scope: "col", "data-key": k.key, class: "col-" + k.kind + (k.group ? " " + k.group : "") });
        var button = el("button", { type: "button", class: "sort", "data-key": k.key }, k.label);
        if (k.group) button.title = k.group;
        th.appendChild(button);
        headRow.appendChild(th);
      });
      headRow.setAttribute("data-columns", signature);
    }
    Array.prototype.forEach.call(headRow.cells, function (th) {
      var active = th.getAttribute("data-key") === ui.sortKey;
      if (active) th.setAttribute("aria-sort", ui.sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    var order = rowOrder(snap, columns);
    var pages = Math.max(1, Math.ceil(order.length / PAGE_SIZE));
    if (ui.page >= pages) ui.page = pages - 1;
    if (ui.page < 0) ui.page = 0;
    var start = ui.page * PAGE_SIZE, end = Math.min(order.length, start + PAGE_SIZE);
    var body = document.createElement("tbody");
    var frag = document.createDocumentFragment();
    for (var r = start; r < end; r++) {
      var i = order[r];
      var tr = document.createElement("tr");
      tr.setAttribute("data-run", String(c.run[i]));
      tr.className = "state-" + (c.state ? c.state[i] : "");
      for (var k = 0; k < columns.length; k++) {
        var col = columns[k], v = (c[col.key] || [])[i], td = document.createElement("td");
        td.className = "col-" + col.kind;
        if (col.key === "run") {
          if (mode === "live" || (embeddedLogs && Object.prototype.hasOwnProperty.call(embeddedLogs, String(v))))
            td.appendChild(logLink(v, String(v)));
          else td.textContent = String(v);
        } else if (col.kind === "state") {
          td.appendChild(el("span", { class: "badge " + v }, v == null ? "—" : String(v)));
        } else if (col.kind === "text") {
          td.textContent = v == null ? "" : String(v);
          if (v) td.title = String(v);
        } else if (col.kind === "dur") {
          td.textContent = finite(v) ? fmtDuration(v) : "—";
        } else {
          td.textContent = fmtNumber(v);
          if (finite(v)) td.title = String(v);
        }
        tr.appendChild(td);
      }
      frag.appendChild(tr);
    }
    if (!order.length) {
      var tr0 = document.createElement("tr");
      var td0 = el("td", { colspan: String(columns.length), class: "empty" },
        (c.run || []).length ? "No " + ui.filter + " runs." : "No runs yet.");
      tr0.appendChild(td0);
      frag.appendChild(tr0);
    }
    body.appendChild(frag);
    table.replaceChild(body, table.tBodies[0]);
    $("page-info").textContent = order.length
      ? "Rows " + grouped(start + 1) + "–" + grouped(end) + " of " + grouped(order.length) + " · page " + (ui.page + 1) + " of " + pages
      : "0 rows";
    $("page-prev").disabled = ui.page <= 0;
    $("page-next").disabled = ui.page >= pages - 1;
    var filter = $("state-filter");
    var counts = (snap.status && snap.status.counts) || {};
    Array.prototype.forEach.call(filter.options, function (o) {
      var n = o.value === "all" ? (c.run || []).length : (counts[o.value] || 0);
      o.textContent = o.value + " (" + n + ")";
    });
    filter.value = ui.filter;
  }

  // --- everything -----------------------------------------------------------------------------------------------
  function render() {
    if (!data) return;
    var began = performance.now();
    var status = data.status || {};
    var parts = [
      function () { renderHeader(status); },
      function () { renderThroughput(data); },
      function () { renderDurations(data); },
      function () { renderFailures(status); },
      function () { renderScatter(data); },
      function () { renderTable(data); }
    ];
    parts.forEach(function (part) {
      try { part(); } catch (err) { console.error("profit page: drawing failed:", err); }
    });
    renders++;
    document.body.setAttribute("data-rendered", String(renders));
    document.body.setAttribute("data-render-ms", String(Math.round(performance.now() - began)));
  }

  function showBanner(text) {
    var b = $("banner");
    b.textContent = text;
    b.hidden = false;
  }
  function hideBanner() {
    var b = $("banner");
    b.hidden = true;
    b.textContent = "";
  }

  function poll() {
    var url = "api/snapshot" + location.search;
    fetch(url, { cache: "no-store", headers: { Accept: "application/json" } }).then(function (response) {
      if (!response.ok) throw new Error("it answered HTTP " + response.status + (response.statusText ? " " + response.statusText : ""));
      return response.json();
    }).then(function (snap) {
      if (!snap || typeof snap !== "object") throw new Error("not a snapshot");
      data = snap;
      hideBanner();
      render();
    }, function (err) {
      var since = data && data.status && finite(data.status.generated) ? " Showing the state of " + fmtDate(data.status.generated) + "." : "";
      showBanner("Cannot reach the study's server (" + (err && err.message ? err.message : err) + "); trying again every " + POLL_MS / 1000 + " s." + since);
      document.body.setAttribute("data-fetch-failed", String(Date.now()));
    }).then(function () {
      setTimeout(poll, POLL_MS);
    });
  }

  function bindControls() {
    $("scatter-x").addEventListener("change", function (e) { ui.x = e.target.value; renderSafely(renderScatter); });
    $("scatter-y").addEventListener("change", function (e) { ui.y = e.target.value; renderSafely(renderScatter); });
    $("state-filter").addEventListener("change", function (e) { ui.filter = e.target.value; ui.page = 0; renderSafely(renderTable); });
    $("page-prev").addEventListener("click", function () { ui.page--; renderSafely(renderTable); });
    $("page-next").addEventListener("click", function () { ui.page++; renderSafely(renderTable); });
    $("runs-table").tHead.addEventListener("click", function (e) {
      var button = e.target.closest("button.sort");
      if (!button) return;
      var key = button.getAttribute("data-key");
      if (ui.sortKey === key) ui.sortDir = -ui.sortDir; else { ui.sortKey = key; ui.sortDir = 1; }
      ui.page = 0;
      renderSafely(renderTable);
      var again = $("runs-table").tHead.querySelector('button.sort[data-key="' + cssEscape(key) + '"]');
      if (again) again.focus();
    });
    document.addEventListener("click", function (e) {
      var a = e.target.closest && e.target.closest("a.log-link");
      if (!a || e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      openLog(a.getAttribute("data-run"));
    });
    var resizeTimer = null, lastWidth = window.innerWidth;
    window.addEventListener("resize", function () {
      if (window.innerWidth === lastWidth) return;
      lastWidth = window.innerWidth;
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        renderSafely(renderThroughput); renderSafely(renderDurations); renderSafely(renderScatter);
      }, 150);
    });
    $("log-close").addEventListener("click", closeLog);
    $("log-dialog").addEventListener("click", function (e) { if (e.target === e.currentTarget) closeLog(); });
  }
  function cssEscape(s) { return window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/["\\]/g, "\\$&"); }
  function renderSafely(fn) {
    if (!data) return;
    try { fn(data); } catch (err) { console.error("profit page: drawing failed:", err); }
  }

  function start() {
    bindControls();
    var embedded = document.getElementById("profit-data");
    if (embedded) {
      mode = "report";
      document.body.setAttribute("data-mode", "report");
      try {
        data = JSON.parse(embedded.textContent);
      } catch (err) {
        console.error("profit page: the embedded data cannot be read:", err);
        return;
      }
      embeddedLogs = (data && data.logs) || {};
      render();
    } else {
      mode = "live";
      document.body.setAttribute("data-mode", "live");
      poll();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
