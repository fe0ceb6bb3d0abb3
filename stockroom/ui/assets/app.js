// stock ui: the pages' script. Plain browser JavaScript, no build step; the
// chart library (uPlot) is loaded before it. Data comes from /api/... when
// served by `stock ui`, from window.STOCK_DATA (data/*.js) in an export.
"use strict";
(function () {
  const body = document.body;
  const MODE = body.dataset.mode;
  const PAGE = body.dataset.page;
  const main = document.getElementById("main");
  const FILES = { experiments: "index.html", curves: "curves.html", parallel: "parallel.html", compare: "compare.html", data: "data.html" };
  const UI = (window.stockUI = { page: PAGE, mode: MODE, started: performance.now() });
  const SELECTED_KEY = "stockui.selected";
  const COLORS = ["#0b57d0", "#c5221f", "#146c2e", "#8430ce", "#b06000", "#007b83", "#b3261e", "#5f6368", "#d01884", "#1e8e3e"];

  // ------------------------------------------------------------ helpers
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(6));
    }
    return String(v);
  }
  function link(page, params) {
    const q = new URLSearchParams(params || {}).toString();
    const base = MODE === "static" ? FILES[page] : page === "experiments" ? "/" : "/" + page;
    return base + (q ? "?" + q : "");
  }
  function param(name) {
    return new URLSearchParams(location.search).get(name);
  }
  async function api(name, params) {
    if (MODE === "static") {
      const d = (window.STOCK_DATA || {})[name];
      if (!d) throw new Error("this export has no " + name + " data");
      return d;
    }
    const q = new URLSearchParams(params || {}).toString();
    const r = await fetch("/api/" + name + (q ? "?" + q : ""), { credentials: "same-origin" });
    let j = null;
    try { j = await r.json(); } catch (e) { /* not JSON: reported below */ }
    if (!r.ok) throw new Error((j && j.error) || r.status + " " + r.statusText);
    return j;
  }
  function selected() {
    try { return JSON.parse(localStorage.getItem(SELECTED_KEY) || "[]"); } catch (e) { return []; }
  }
  function saveSelected(list) {
    try { localStorage.setItem(SELECTED_KEY, JSON.stringify(list)); } catch (e) { /* private mode: selection lives in the URL only */ }
  }
  function fail(err) {
    main.querySelector(".loading")?.remove();
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = String(err && err.message ? err.message : err);
    main.appendChild(p);
    UI.error = p.textContent;
  }
  function h1() { return "<h1>" + esc(document.querySelector("nav a[aria-current]").textContent) + "</h1>"; }
  // Live update: the server's fingerprint of refs and stock; a change redraws.
  // Asked before the page's data, so a change made while the data loads is seen too.
  const firstVersion = MODE === "server" ? api("version").then((d) => d.version, () => null) : Promise.resolve(null);
  function poll(redraw) {
    if (MODE !== "server") return;
    firstVersion.then((first) => {
      let last = first;
      setInterval(async () => {
        try {
          const v = (await api("version")).version;
          if (last !== null && v !== last) { UI.updates = (UI.updates || 0) + 1; await redraw(); }
          last = v;
        } catch (e) { /* server gone: keep the page as it is */ }
      }, 2000);
    });
  }
  function numbersTable(caption, head, rows) {
    return "<table><caption class='muted'>" + esc(caption) + "</caption><thead><tr>" +
      head.map((x) => "<th scope='col'>" + esc(x) + "</th>").join("") + "</tr></thead><tbody>" +
      rows.map((r) => "<tr>" + r.map((c) => "<td class='" + (typeof c === "number" ? "num" : "") + "'>" + esc(fmt(c)) + "</td>").join("") + "</tr>").join("") +
      "</tbody></table>";
  }

  // -------------------------------------------------------- experiments
  // A row is a git commit or a run's checkpoint (SPEC 9) that no git commit records;
  // `run` names the checkpoint (RUN@STEP) a row is, `id` identifies the row.
  const BASE_COLS = ["commit", "branch", "run", "date", "subject", "stock"];
  let METRIC_COLS = new Set();
  function label(row) { return row.commit ? row.commit.slice(0, 10) : row.id; }
  // A tag, or a run's last/best metric (METRIC:last, METRIC:best).
  function value(row, col) { return METRIC_COLS.has(col) ? row.metrics[col] : row.tags[col]; }
  function cellValue(row, col) {
    if (col === "commit") return row.commit ? row.commit.slice(0, 10) : "";
    if (col === "branch") return row.branch;
    if (col === "run") return row.checkpoint || "";
    if (col === "date") return row.date;
    if (col === "subject") return row.subject;
    if (col === "stock") return row.state === "ok" ? (row.stock || "").slice(0, 12) + (row.pruned ? " (pruned)" : "") : "(" + row.state + ")";
    return value(row, col);
  }
  function sortValue(row, col) {
    if (col === "date") return row.time;
    if (col === "commit") return row.commit || "";
    const v = cellValue(row, col);
    return v === undefined ? null : v;
  }
  // Filter: space-separated terms, each `KEY OP VALUE` (OP: >= <= != = > < ~) or text anywhere.
  function parseFilter(text) {
    return text.trim().split(/\s+/).filter(Boolean).map((t) => {
      const m = t.match(/^([^<>=!~]+)(>=|<=|!=|=|>|<|~)(.*)$/);
      return m ? { key: m[1], op: m[2], value: m[3] } : { text: t.toLowerCase() };
    });
  }
  function matches(row, terms) {
    for (const t of terms) {
      if (t.text !== undefined) {
        const hay = [row.commit || "", row.checkpoint || "", row.branch, row.branches.join(" "), row.subject, row.date, ...Object.entries(row.tags).map(([k, v]) => k + "=" + v)].join(" ").toLowerCase();
        if (!hay.includes(t.text)) return false;
        continue;
      }
      const v = t.key === "branch" ? row.branches.join(" ") : cellValue(row, t.key);
      if (v === undefined || v === null) return false;
      const num = Number(t.value);
      const isNum = typeof v === "number" && t.value !== "" && !Number.isNaN(num);
      const a = isNum ? v : String(v), b = isNum ? num : t.value;
      const ok = { ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b, "=": t.key === "branch" ? String(v).split(" ").includes(t.value) : a == b, "!=": a != b, "~": String(v).includes(t.value) }[t.op];
      if (!ok) return false;
    }
    return true;
  }

  async function experimentsPage() {
    const table = await api("experiments");
    UI.table = table;
    METRIC_COLS = new Set(table.metric_columns || []);
    const st = {
      sort: { col: "date", dir: -1 },
      filter: param("filter") || "",
      // METRIC:min and METRIC:max start hidden (Columns shows them); :last and :best show.
      cols: new Set([...BASE_COLS, ...table.tags, ...[...METRIC_COLS].filter((c) => !/:(min|max)$/.test(c))]),
      branches: new Set(table.branches.map((b) => b.name)),
      sel: new Set(selected().filter((c) => table.rows.some((r) => r.id === c))),
    };
    main.innerHTML = h1() +
      "<div class='controls'>" +
      "<label>Filter <input type='search' id='filter' placeholder='loss<0.5 branch=main text' aria-describedby='filter-help'></label>" +
      "<span id='filter-help' class='muted'>terms: KEY&lt;0.5, KEY=VALUE, KEY~TEXT, or text</span>" +
      "<details class='chooser'><summary>Columns</summary><div id='cols'></div></details>" +
      "<details class='chooser'><summary>Branches</summary><div id='branches'></div></details>" +
      "<button id='go-curves'>Curves of selected</button><button id='go-compare'>Compare 2 selected</button>" +
      "<button id='go-parallel'>Parallel coordinates</button>" +
      "<span id='count' class='muted' aria-live='polite'></span></div>" +
      "<div class='tablewrap'><table id='runs' aria-label='Experiments: commits and checkpoints with their tags and metrics. Arrow keys move, Space selects.'>" +
      "<thead></thead><tbody></tbody></table></div>";
    const $ = (id) => document.getElementById(id);
    $("filter").value = st.filter;
    const allCols = [...BASE_COLS, ...table.tags, ...METRIC_COLS];
    $("cols").innerHTML = allCols.map((c) => "<label><input type='checkbox' value='" + esc(c) + "'" + (st.cols.has(c) ? " checked" : "") + "> " + esc(c) + "</label>").join("");
    $("branches").innerHTML = table.branches.map((b) => "<label><input type='checkbox' value='" + esc(b.name) + "' checked> " + esc(b.name) + (b.remote ? " <span class='muted'>(remote)</span>" : "") + "</label>").join("");
    const numeric = new Set(table.numeric);

    function visibleRows() {
      const terms = parseFilter(st.filter);
      const rows = table.rows.filter((r) => r.branches.some((b) => st.branches.has(b)) && matches(r, terms));
      const { col, dir } = st.sort;
      rows.sort((x, y) => {
        const a = sortValue(x, col), b = sortValue(y, col);
        if (a === null && b === null) return 0;
        if (a === null) return 1; // absent values stay last either way
        if (b === null) return -1;
        if (typeof a === "number" && typeof b === "number") return (a - b) * dir;
        return String(a).localeCompare(String(b)) * dir;
      });
      return rows;
    }
    function render() {
      const cols = allCols.filter((c) => st.cols.has(c));
      const rows = visibleRows();
      UI.rows = rows.map((r) => r.id);
      UI.columns = cols;
      const head = "<tr><th scope='col'><span class='muted'>pick</span></th>" + cols.map((c) => {
        const s = st.sort.col === c ? (st.sort.dir > 0 ? "ascending" : "descending") : "none";
        return "<th scope='col' aria-sort='" + s + "'><button class='sort' data-col='" + esc(c) + "'>" + esc(c) + (s === "ascending" ? " ▲" : s === "descending" ? " ▼" : "") + "</button></th>";
      }).join("") + "</tr>";
      const out = [];
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i];
        const sel = st.sel.has(r.id);
        const cls = ((sel ? "selected " : "") + (r.kind === "checkpoint" ? "checkpoint" : "")).trim();
        out.push("<tr data-commit='" + esc(r.id) + "' tabindex='" + (i === 0 ? 0 : -1) + "' aria-selected='" + sel + "'" + (cls ? " class='" + cls + "'" : "") + ">" +
          "<td><input type='checkbox' tabindex='-1' aria-label='select " + esc(label(r)) + "'" + (sel ? " checked" : "") + "></td>");
        for (const c of cols) {
          const v = cellValue(r, c);
          const cls = numeric.has(c) ? "num" : c === "subject" ? "subject" : "";
          out.push("<td" + (cls ? " class='" + cls + "'" : "") + (c === "commit" && r.commit ? " title='" + r.commit + "'" : "") + ">" + esc(fmt(v)) + "</td>");
        }
        out.push("</tr>");
      }
      $("runs").tHead.innerHTML = head;
      $("runs").tBodies[0].innerHTML = out.join("");
      $("count").textContent = rows.length + " of " + table.rows.length + " rows, " + st.sel.size + " selected";
      $("go-compare").disabled = st.sel.size !== 2;
      $("go-curves").disabled = st.sel.size === 0 || table.numeric.length === 0;
    }
    function toggle(tr) {
      const c = tr.dataset.commit;
      if (st.sel.has(c)) st.sel.delete(c); else st.sel.add(c);
      saveSelected([...st.sel]);
      const on = st.sel.has(c);
      tr.classList.toggle("selected", on);
      tr.setAttribute("aria-selected", String(on));
      tr.querySelector("input").checked = on;
      $("count").textContent = UI.rows.length + " of " + table.rows.length + " rows, " + st.sel.size + " selected";
      $("go-compare").disabled = st.sel.size !== 2;
      $("go-curves").disabled = st.sel.size === 0 || table.numeric.length === 0;
    }
    $("filter").addEventListener("input", (e) => { st.filter = e.target.value; render(); });
    $("cols").addEventListener("change", (e) => { e.target.checked ? st.cols.add(e.target.value) : st.cols.delete(e.target.value); render(); });
    $("branches").addEventListener("change", (e) => { e.target.checked ? st.branches.add(e.target.value) : st.branches.delete(e.target.value); render(); });
    $("runs").tHead.addEventListener("click", (e) => {
      const b = e.target.closest("button.sort");
      if (!b) return;
      const col = b.dataset.col;
      st.sort = st.sort.col === col ? { col, dir: -st.sort.dir } : { col, dir: numeric.has(col) || col === "date" ? 1 : 1 };
      render();
      document.querySelector("th button.sort[data-col='" + CSS.escape(col) + "']").focus();
    });
    const tbody = $("runs").tBodies[0];
    tbody.addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) toggle(tr); });
    tbody.addEventListener("keydown", (e) => {
      const tr = e.target.closest("tr");
      if (!tr) return;
      let next = null;
      if (e.key === "ArrowDown") next = tr.nextElementSibling;
      else if (e.key === "ArrowUp") next = tr.previousElementSibling;
      else if (e.key === "Home") next = tbody.firstElementChild;
      else if (e.key === "End") next = tbody.lastElementChild;
      else if (e.key === " " || e.key === "Enter") { e.preventDefault(); toggle(tr); return; }
      if (next) { e.preventDefault(); tr.tabIndex = -1; next.tabIndex = 0; next.focus(); }
    });
    const chosen = () => table.rows.filter((r) => st.sel.has(r.id));
    $("go-curves").addEventListener("click", () => {
      // A checkpoint (or a commit recording one) draws its run's per-step metrics; others their branch's tags.
      const runs = [...new Set(chosen().map((r) => r.curve || r.branch))];
      location.href = link("curves", { runs: runs.join(",") });
    });
    $("go-compare").addEventListener("click", () => {
      const [x, y] = chosen().sort((p, q) => p.time - q.time);
      location.href = link("compare", { a: x.id, b: y.id });
    });
    $("go-parallel").addEventListener("click", () => { location.href = link("parallel"); });
    render();
    UI.render = render;
    requestAnimationFrame(() => { UI.painted = performance.now(); });
    poll(async () => { Object.assign(table, await api("experiments")); METRIC_COLS = new Set(table.metric_columns || []); render(); });
  }

  // ------------------------------------------------------------- curves
  function smooth(ys, alpha) {
    if (!alpha) return ys;
    const out = new Array(ys.length);
    let acc = null;
    for (let i = 0; i < ys.length; i++) {
      const v = ys[i];
      if (v === null) { out[i] = null; continue; }
      acc = acc === null ? v : alpha * acc + (1 - alpha) * v; // exponential moving average, as TensorBoard's slider
      out[i] = acc;
    }
    return out;
  }
  // Curves travel as base64 of little-endian float64s (data.f64); NaN is a gap (null for uPlot).
  function f64(text) {
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const a = new Float64Array(bytes.buffer);
    const out = new Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = Number.isNaN(a[i]) ? null : a[i];
    return out;
  }
  function decodeCurves(d, keep) {
    return { metric: d.metric, exact: d.exact, x: f64(d.x), series: d.series.filter((s) => !keep || keep.has(s.run)).map((s) => ({ run: s.run, points: s.points, y: f64(s.y) })) };
  }
  async function curvesPage() {
    const chartWidth = () => Math.max(400, Math.min(2000, main.clientWidth - 40));
    // Served: the index and the first chart's data in one request (the server picks runs and metric as below).
    let first = MODE === "static" ? null : await api("curves", { first: "1", runs: param("runs") || "", metric: param("metric") || "", points: chartWidth() });
    const index = MODE === "static" ? (await api("curves")).index : first.index;
    if (!index.metrics.length) { main.innerHTML = h1() + "<p>No metrics or numeric tags yet: log them in a run (<code>run.log(step, loss=0.3)</code>) or tag a number (<code>stock.tag['loss'] = 0.3</code>) and commit.</p>"; UI.curves = { series: [] }; return; }
    let runs = (param("runs") || "").split(",").filter((r) => index.runs.includes(r));
    if (!runs.length) runs = index.runs.slice(0, 10);
    // Default metric: `loss` where there is one (what most runs log), else the first.
    const st = { metric: index.metrics.includes(param("metric")) ? param("metric") : index.metrics.includes("loss") ? "loss" : index.metrics[0], runs: new Set(runs), alpha: Number(param("smooth") || 0), log: param("log") === "1" };
    main.innerHTML = h1() + "<div class='controls'>" +
      "<label>Metric <select id='metric'>" + index.metrics.map((m) => "<option" + (m === st.metric ? " selected" : "") + ">" + esc(m) + "</option>").join("") + "</select></label>" +
      "<details class='chooser'><summary>Runs</summary><div id='runlist'>" + index.runs.map((r) => "<label><input type='checkbox' value='" + esc(r) + "'" + (st.runs.has(r) ? " checked" : "") + "> " + esc(r) + ((index.kinds || {})[r] === "tags" ? " <span class='muted'>(tags per commit)</span>" : "") + "</label>").join("") + "</div></details>" +
      "<label>Smoothing <input type='range' id='alpha' min='0' max='0.99' step='0.01' value='" + st.alpha + "'><output id='alpha-out'>" + st.alpha + "</output></label>" +
      "<label><input type='checkbox' id='log'" + (st.log ? " checked" : "") + "> log scale</label>" +
      "<span class='legend-note' id='note'></span></div>" +
      "<div id='chart' class='chart' role='img'></div><div id='numbers'></div>";
    const $ = (id) => document.getElementById(id);
    let doc = null, chart = null;
    async function load() {
      const names = index.runs.filter((r) => st.runs.has(r));
      if (first && first.curves && first.curves.metric === st.metric) {
        doc = decodeCurves(first.curves);
        first = null;
      } else if (MODE === "static") {
        doc = decodeCurves((await api("curves")).series[st.metric], st.runs);
      } else {
        doc = decodeCurves(await api("curves", { metric: st.metric, runs: names.join(","), points: chartWidth() })); // a min and a max per 2 px
      }
    }
    function draw() {
      const t0 = performance.now();
      const x = doc.x;
      const ys = doc.series.map((s) => {
        const y = smooth(s.y, st.alpha);
        return st.log ? y.map((v) => (v !== null && v > 0 ? v : null)) : y;
      });
      const width = Math.max(400, main.clientWidth - 40);
      const opts = {
        width, height: 420, title: st.metric,
        legend: { show: doc.series.length <= 20 }, // past that the table below names the runs; 100 live legend rows cost more than the drawing
        scales: { x: { time: false }, y: { distr: st.log ? 3 : 1 } },
        axes: [{ label: "step" }, { label: st.metric, size: 70 }],
        series: [{ label: "step" }, ...doc.series.map((s, i) => ({ label: s.run, stroke: COLORS[i % COLORS.length], width: doc.series.length > 20 ? 1 : 1.5, spanGaps: true, points: { show: x.length <= 60 } }))],
      };
      if (chart) chart.destroy();
      $("chart").innerHTML = "";
      chart = new uPlot(opts, [x, ...ys], $("chart"));
      UI.chart = chart;
      UI.curves = { metric: st.metric, exact: doc.exact, x: x.length, series: doc.series.map((s, i) => ({ run: s.run, points: s.points, drawn: ys[i].filter((v) => v !== null).length, last: lastOf(ys[i]) })) };
      UI.drawMs = performance.now() - t0; // uPlot's part; the numbers table follows
      $("chart").setAttribute("aria-label", "Line chart of " + st.metric + " by step for " + doc.series.length + " runs; the numbers are in the table below.");
      $("note").textContent = doc.exact ? "one point per step" : "downsampled on the server: min and max per bucket kept";
      const summary = doc.series.map((s, i) => {
        const v = ys[i].filter((y) => y !== null);
        return [s.run, s.points, v.length ? v[0] : null, v.length ? v[v.length - 1] : null, v.length ? Math.min(...v) : null, v.length ? Math.max(...v) : null];
      });
      const limit = Math.min(x.length, 500);
      $("numbers").innerHTML = "<h2>Numbers</h2>" + numbersTable("per run: " + st.metric + (st.alpha ? " (smoothed " + st.alpha + ")" : ""), ["run", "points", "first", "last", "min", "max"], summary) +
        "<details id='allpoints'><summary>All points" + (limit < x.length ? " (first " + limit + " of " + x.length + ")" : "") + "</summary></details>";
      // Built when opened: 100 runs x 500 rows of cells would slow every redraw.
      $("allpoints").addEventListener("toggle", (e) => {
        if (!e.target.open || e.target.querySelector("table")) return;
        const rows = [];
        for (let i = 0; i < limit; i++) rows.push([x[i], ...ys.map((y) => y[i])]);
        e.target.insertAdjacentHTML("beforeend", numbersTable(st.metric + " by step", ["step", ...doc.series.map((s) => s.run)], rows));
      });
    }
    function lastOf(y) { for (let i = y.length - 1; i >= 0; i--) if (y[i] !== null) return y[i]; return null; }
    async function refresh() {
      const t0 = performance.now();
      await load();
      const t1 = performance.now();
      draw();
      UI.timing = { begin: t0, load: t1 - t0, draw: performance.now() - t1, chart: UI.drawMs };
    }
    $("metric").addEventListener("change", (e) => { st.metric = e.target.value; refresh().catch(fail); });
    $("runlist").addEventListener("change", (e) => { e.target.checked ? st.runs.add(e.target.value) : st.runs.delete(e.target.value); refresh().catch(fail); });
    $("alpha").addEventListener("input", (e) => { st.alpha = Number(e.target.value); $("alpha-out").textContent = e.target.value; draw(); });
    $("log").addEventListener("change", (e) => { st.log = e.target.checked; draw(); });
    await refresh();
    UI.refresh = refresh;
    requestAnimationFrame(() => { UI.painted = performance.now(); });
    poll(refresh);
  }

  // ----------------------------------------------------------- parallel
  async function parallelPage() {
    const table = await api("experiments");
    METRIC_COLS = new Set(table.metric_columns || []);
    if (!table.numeric.length) { main.innerHTML = h1() + "<p>No numeric tags yet.</p>"; return; }
    const sel = new Set(selected());
    const st = { axes: table.numeric.slice(0, 8), color: table.numeric[table.numeric.length - 1] };
    main.innerHTML = h1() + "<div class='controls'><details class='chooser'><summary>Axes</summary><div id='axes'>" +
      table.numeric.map((k) => "<label><input type='checkbox' value='" + esc(k) + "'" + (st.axes.includes(k) ? " checked" : "") + "> " + esc(k) + "</label>").join("") + "</div></details>" +
      "<label>Colour by <select id='color'>" + table.numeric.map((k) => "<option" + (k === st.color ? " selected" : "") + ">" + esc(k) + "</option>").join("") + "</select></label>" +
      "<span class='muted'>one line per commit or checkpoint; selected commits drawn thick</span></div><div id='pc' class='chart'></div><div id='numbers'></div>";
    const $ = (id) => document.getElementById(id);
    function draw() {
      const axes = table.numeric.filter((k) => st.axes.includes(k));
      const rows = table.rows.filter((r) => axes.some((k) => typeof value(r, k) === "number"));
      const W = Math.max(500, main.clientWidth - 40), H = 380, pad = 40;
      const range = {};
      for (const k of [...axes, st.color]) {
        const v = rows.map((r) => value(r, k)).filter((x) => typeof x === "number");
        range[k] = [Math.min(...v), Math.max(...v)];
      }
      const xOf = (i) => pad + (axes.length > 1 ? (i * (W - 2 * pad)) / (axes.length - 1) : (W - 2 * pad) / 2);
      const yOf = (k, v) => { const [lo, hi] = range[k]; return H - pad - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (H - 2 * pad); };
      const colour = (v) => { const [lo, hi] = range[st.color]; const t = typeof v === "number" && hi > lo ? (v - lo) / (hi - lo) : 0.5; return "hsl(" + Math.round(220 - 200 * t) + ",75%,38%)"; };
      const parts = ["<svg width='" + W + "' height='" + H + "' role='img' aria-label='Parallel coordinates of " + esc(axes.join(", ")) + " for " + rows.length + " commits; the numbers are in the table below.'>"];
      for (const r of rows) {
        const pts = axes.map((k, i) => (typeof value(r, k) === "number" ? xOf(i).toFixed(1) + "," + yOf(k, value(r, k)).toFixed(1) : null)).filter(Boolean);
        const on = sel.has(r.id);
        parts.push("<polyline fill='none' stroke='" + colour(value(r, st.color)) + "' stroke-width='" + (on ? 3 : 1) + "' stroke-opacity='" + (on ? 1 : 0.55) + "' points='" + pts.join(" ") + "'><title>" + esc(r.branch + " " + label(r)) + "</title></polyline>");
      }
      axes.forEach((k, i) => {
        const x = xOf(i);
        parts.push("<line x1='" + x + "' x2='" + x + "' y1='" + pad + "' y2='" + (H - pad) + "' stroke='#4a4a4a'/>");
        parts.push("<text x='" + x + "' y='" + (pad - 18) + "' text-anchor='middle' font-weight='600'>" + esc(k) + "</text>");
        parts.push("<text x='" + (x + 4) + "' y='" + (pad - 4) + "'>" + esc(fmt(range[k][1])) + "</text><text x='" + (x + 4) + "' y='" + (H - pad + 14) + "'>" + esc(fmt(range[k][0])) + "</text>");
      });
      parts.push("</svg>");
      $("pc").innerHTML = parts.join("");
      UI.parallel = { axes, lines: rows.length };
      $("numbers").innerHTML = "<details><summary>Numbers</summary>" + numbersTable("values per row", ["row", "branch", ...axes], rows.map((r) => [label(r), r.branch, ...axes.map((k) => value(r, k))])) + "</details>";
    }
    $("axes").addEventListener("change", (e) => { st.axes = e.target.checked ? [...st.axes, e.target.value] : st.axes.filter((k) => k !== e.target.value); draw(); });
    $("color").addEventListener("change", (e) => { st.color = e.target.value; draw(); });
    draw();
    poll(async () => { Object.assign(table, await api("experiments")); draw(); });
  }

  // ------------------------------------------------------------ compare
  function compareView(doc) {
    const side = (s) => esc(s.rev || "") + (s.commit ? " <code>" + esc(s.commit.slice(0, 10)) + "</code>" : "") + (s.stock ? " stock <code>" + esc(s.stock.slice(0, 12)) + "</code>" : "");
    const out = ["<p>From " + side(doc.from) + " to " + side(doc.to) + (doc.changed ? "" : " — <strong>no changes</strong>") + "</p>"];
    const status = (s) => "<span class='status-" + esc(s.replace(/\s/g, "-")) + "'>" + esc(s) + "</span>";
    out.push("<h2>Tags</h2>");
    out.push(doc.tags.length ? "<table><thead><tr><th>tag</th><th>status</th><th>old</th><th>new</th><th>change</th></tr></thead><tbody>" +
      doc.tags.map((t) => "<tr><td>" + esc(t.key) + "</td><td>" + status(t.status) + "</td><td class='num'>" + esc(fmt(t.old)) + "</td><td class='num'>" + esc(fmt(t.new)) + "</td><td class='num'>" +
        (t.abs_change === null ? "" : esc((t.abs_change > 0 ? "+" : "") + fmt(t.abs_change)) + (t.rel_change === null ? "" : " (" + esc((t.rel_change * 100).toFixed(2)) + "%)")) + "</td></tr>").join("") + "</tbody></table>" : "<p class='muted'>no tags</p>");
    out.push("<h2>Data</h2>");
    const schema = (s) => (s ? esc(s.dtype) + " " + esc(JSON.stringify(s.shape)) : "");
    out.push(doc.data.length ? "<table><thead><tr><th>column</th><th>status</th><th>schema</th><th>added</th><th>removed</th><th>changed</th><th>unchanged</th></tr></thead><tbody>" +
      doc.data.map((c) => "<tr><td>" + esc(c.column) + "</td><td>" + status(c.status) + "</td><td>" + schema(c.new_schema || c.old_schema) + "</td><td class='num'>" + c.samples_added + "</td><td class='num'>" + c.samples_removed + "</td><td class='num'>" + c.samples_changed + "</td><td class='num'>" + c.samples_unchanged + "</td></tr>").join("") + "</tbody></table>" : "<p class='muted'>no data columns</p>");
    out.push("<h2>Models</h2>");
    if (!doc.models.length) out.push("<p class='muted'>no models</p>");
    for (const m of doc.models) {
      out.push("<h3>" + esc(m.model) + " " + status(m.status) + (m.note ? " <span class='muted'>" + esc(m.note) + "</span>" : "") + "</h3>");
      const changed = m.layers.filter((l) => typeof l.rel_l2 === "number");
      if (changed.length) {
        // Bars: relative L2 change per changed layer, on a log axis (changes span orders of magnitude).
        const W = 520, row = 18, left = 200, H = changed.length * row + 24;
        const vals = changed.map((l) => Math.max(l.rel_l2, 1e-12));
        const lo = Math.floor(Math.log10(Math.min(...vals))), hi = Math.ceil(Math.log10(Math.max(...vals))) || lo + 1;
        const span = Math.max(1, hi - lo);
        const bar = (v) => ((Math.log10(v) - lo) / span) * (W - left - 60) + 2;
        out.push("<svg class='layers' width='" + W + "' height='" + H + "' role='img' aria-label='Relative change (L2) of the " + changed.length + " changed layers of " + esc(m.model) + "; the numbers are in the table.'>" +
          changed.map((l, i) => "<text x='" + (left - 6) + "' y='" + (i * row + 13) + "' text-anchor='end'>" + esc(l.name) + "</text><rect data-layer='" + esc(l.name) + "' x='" + left + "' y='" + (i * row + 2) + "' width='" + bar(Math.max(l.rel_l2, 1e-12)).toFixed(1) + "' height='" + (row - 5) + "' fill='#0b57d0'/><text x='" + (left + bar(Math.max(l.rel_l2, 1e-12)) + 4).toFixed(1) + "' y='" + (i * row + 13) + "'>" + esc(fmt(l.rel_l2)) + "</text>").join("") +
          "<text x='" + left + "' y='" + (H - 4) + "' class='muted'>relative L2 change, log scale (1e" + lo + " … 1e" + hi + ")</text></svg>");
      }
      out.push("<table><thead><tr><th>layer</th><th>status</th><th>old</th><th>new</th><th>relative L2</th><th>max |Δ|</th></tr></thead><tbody>" +
        m.layers.map((l) => "<tr><td>" + esc(l.name) + "</td><td>" + status(l.status) + "</td><td>" + esc(l.old_dtype ? JSON.stringify(l.old_shape) + " " + l.old_dtype : "") + "</td><td>" + esc(l.new_dtype ? JSON.stringify(l.new_shape) + " " + l.new_dtype : "") + "</td><td class='num'>" + esc(fmt(l.rel_l2)) + "</td><td class='num'>" + esc(fmt(l.max_abs_diff)) + "</td></tr>").join("") + "</tbody></table>");
    }
    return out.join("");
  }
  async function comparePage() {
    const table = await api("experiments");
    const names = table.branches.map((b) => b.name);
    if (MODE === "static") {
      const pairs = (await api("compare")).pairs;
      main.innerHTML = h1() + (pairs.length ? "<div class='controls'><label>Revisions <select id='pair'>" + pairs.map((p, i) => "<option value='" + i + "'>" + esc(p.from.rev + " → " + p.to.rev) + "</option>").join("") + "</select></label><span class='muted'>an export holds each branch tip against HEAD; <code>stock ui</code> compares any two</span></div>" : "<p>This export has no second revision to compare.</p>") + "<div id='result'></div>";
      const show = (i) => { const p = pairs[i]; UI.compare = p; document.getElementById("result").innerHTML = p.error ? "<p class='error'>" + esc(p.error) + "</p>" : compareView(p); };
      if (pairs.length) { document.getElementById("pair").addEventListener("change", (e) => show(Number(e.target.value))); show(0); }
      return;
    }
    let a = param("a"), b = param("b");
    if (!a || !b) { a = a || names[1] || "HEAD"; b = b || names[0] || "HEAD"; }
    main.innerHTML = h1() + "<form class='controls' method='get' action='/compare'><datalist id='revs'>" + names.map((n) => "<option value='" + esc(n) + "'>").join("") + "</datalist>" +
      "<label>From <input type='text' name='a' list='revs' value='" + esc(a) + "'></label><label>To <input type='text' name='b' list='revs' value='" + esc(b) + "'></label><button type='submit'>Compare</button></form><div id='result'><p class='loading'>Comparing…</p></div>";
    const doc = await api("compare", { a, b });
    UI.compare = doc;
    document.getElementById("result").innerHTML = compareView(doc);
  }

  // --------------------------------------------------------------- data
  function dataView(doc) {
    if (doc.error) return "<p class='error'>" + esc(doc.error) + "</p>";
    const out = ["<p>Stock of " + esc(doc.rev) + " <code>" + esc(doc.commit.slice(0, 10)) + "</code>, stock commit <code>" + esc(doc.stock.slice(0, 12)) + "</code></p>"];
    out.push("<table><thead><tr><th>column</th><th>dtype</th><th>sample shape</th><th>samples</th></tr></thead><tbody>" +
      doc.columns.map((c) => "<tr><td>" + esc(c.name) + "</td><td>" + esc(c.dtype) + "</td><td>" + esc(JSON.stringify(c.shape)) + "</td><td class='num'>" + c.count + "</td></tr>").join("") + "</tbody></table>");
    for (const c of doc.columns) {
      out.push("<h2>" + esc(c.name) + " <span class='muted'>first " + c.samples.length + " of " + c.count + "</span></h2><div class='samples'>");
      for (const s of c.samples) {
        out.push("<figure class='sample'>" + (s.image ? "<img src='" + s.image + "' alt='sample " + esc(s.key) + " of " + esc(c.name) + ", an image " + esc(s.shape.join("×")) + "'>" : "<code>" + esc(s.values.map(fmt).join(", ")) + (s.more ? ", …" : "") + "</code>") +
          "<figcaption>" + esc(s.key) + " <span class='muted'>" + esc(s.dtype + " " + JSON.stringify(s.shape)) + "</span></figcaption></figure>");
      }
      out.push("</div>");
    }
    out.push("<h2>Models</h2>" + (doc.models.length ? "<ul>" + doc.models.map((m) => "<li>" + esc(m) + "</li>").join("") + "</ul>" : "<p class='muted'>no models</p>"));
    return out.join("");
  }
  async function dataPageView() {
    const table = await api("experiments");
    const names = table.branches.map((b) => b.name);
    if (MODE === "static") {
      const revs = (await api("data")).revs;
      const keys = Object.keys(revs);
      main.innerHTML = h1() + "<div class='controls'><label>Revision <select id='rev'>" + keys.map((k) => "<option>" + esc(k) + "</option>").join("") + "</select></label></div><div id='result'></div>";
      const show = (k) => { UI.data = revs[k]; document.getElementById("result").innerHTML = keys.length ? dataView(revs[k]) : "<p>No stock.</p>"; };
      document.getElementById("rev").addEventListener("change", (e) => show(e.target.value));
      if (keys.length) show(keys[0]); else show(null);
      return;
    }
    const rev = param("rev") || "HEAD";
    main.innerHTML = h1() + "<form class='controls' method='get' action='/data'><datalist id='revs'>" + names.map((n) => "<option value='" + esc(n) + "'>").join("") + "</datalist>" +
      "<label>Revision <input type='text' name='rev' list='revs' value='" + esc(rev) + "'></label><button type='submit'>Show</button></form><div id='result'><p class='loading'>Reading…</p></div>";
    const doc = await api("data", { rev });
    UI.data = doc;
    document.getElementById("result").innerHTML = dataView(doc);
  }

  const pages = { experiments: experimentsPage, curves: curvesPage, parallel: parallelPage, compare: comparePage, data: dataPageView };
  if (typeof uPlot === "undefined" && PAGE === "curves") { fail("the chart library (uPlot) is not installed: run scripts/env.sh"); return; }
  pages[PAGE]().then(() => { UI.ready = true; }, (e) => { fail(e); UI.ready = true; });
})();
