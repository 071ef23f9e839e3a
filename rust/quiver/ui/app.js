// The dashboard of quiver serve: polls /api/overview and /api/series every step (1 s) and
// runs its tables and analytics as SQL over the service's recent window (/api/sql).
// Values from the service are always set as text, never as HTML.
"use strict";

const STEP_MS = 1000;
const ANALYTICS_EVERY_MS = 5000;
const REJECTS_EVERY_MS = 2000;
const IDLE_AFTER_S = 10;
const HISTORY_S = 600;

const state = {
  token: sessionStorage.getItem("quiver-token"),
  pipeline: null,
  after: 0,
  points: [],
  charts: {},
  lastBatchAt: null,
  serviceDown: null,
  health: null,
  links: [],
};

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

class Unauthorized extends Error {}

async function api(path, body) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const init = body === undefined ? { headers } : {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
  if (res.status === 401) {
    $("token-form").hidden = false;
    $("token-error").textContent = data.error || "";
    throw new Unauthorized(data.error);
  }
  if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`);
  return data;
}

const sql = (query) => api("/api/sql", { sql: query });
const quoted = (name) => `"${name.replaceAll('"', '""')}"`;
const fmt = (v, digits = 0) => v === null || v === undefined ? "–" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits });

// --- state of the parts -----------------------------------------------------------------

function renderParts() {
  const parts = $("parts");
  parts.replaceChildren();
  const add = (name, cls, detail) => {
    const li = el("li", `${name}: ${cls === "ok" ? "up" : cls}`, cls);
    li.title = detail;
    li.dataset.part = name;
    const d = el("span", ` — ${detail}`, "muted");
    li.append(d);
    parts.append(li);
  };
  if (state.serviceDown) {
    add("quiver serve", "down", state.serviceDown);
  } else {
    add("quiver serve", "ok", "answers");
  }
  const h = state.health;
  const others = h
    ? [["Cassandra", h.cassandra], ["Kafka", h.kafka], ["Spark job", h.spark], ["Postgres", h.postgres]]
    : [];
  for (const [name, part] of others) {
    // With the service gone, what it last said about them may no longer hold.
    if (state.serviceDown) add(name, "unknown", `last known: ${part.state}`);
    else add(name, part.state, part.detail);
  }
  let stream;
  if (state.serviceDown) {
    stream = ["unknown", "the service does not answer"];
  } else if (state.lastBatchAt === null) {
    stream = ["idle", "no batch yet: start the Spark job (or another client) to stream into this service"];
  } else {
    const ago = (Date.now() - state.lastBatchAt) / 1000;
    stream = ago > IDLE_AFTER_S
      ? ["idle", `no batch for ${Math.round(ago)} s: is the Spark job running?`]
      : ["ok", "batches arriving"];
  }
  add("stream", stream[0], stream[1]);
}

function renderLinks(links) {
  const nav = $("links");
  nav.replaceChildren(...links.map((l) => {
    const a = el("a", l.name);
    a.href = l.url;
    a.target = "_blank";
    a.rel = "noopener";
    return a;
  }));
}

// --- live charts ------------------------------------------------------------------------

const SERIES = {
  rows: [["in", "rows_in", "#3867d6"], ["written", "rows_written", "#1a7f37"], ["rejected", "rows_rejected", "#c62828"]],
  latency: [["p50", "latency_p50_ms", "#1a7f37"], ["p95", "latency_p95_ms", "#e58e26"], ["p99", "latency_p99_ms", "#c62828"]],
  batches: [["decode + SQL (mean)", "process_ms", "#3867d6"], ["write (mean)", "store_ms", "#1a7f37"], ["write (p99)", "store_p99_ms", "#c62828"], ["Spark batch (driver)", "spark_batch_ms", "#8e44ad"]],
  errors: [["batches", "batches", "#3867d6"], ["failed batches", "batch_errors", "#c62828"], ["sink errors", "sink_errors", "#e58e26"], ["in flight", "inflight_batches", "#8a8f98"]],
};

function makeChart(id, series) {
  const target = $(id);
  const opts = {
    width: Math.max(target.clientWidth, 300),
    height: 220,
    series: [{}, ...series.map(([label, , stroke]) => ({ label, stroke, width: 1.5, spanGaps: false }))],
    axes: [{}, { size: 60 }],
    // Up to now, over what there is (at least a minute, at most ten), so that a chart with
    // few points does not zoom in on them nor squeeze them into a corner.
    scales: { x: { time: true, range: () => xRange() } },
  };
  return new uPlot(opts, [[], ...series.map(() => [])], target);
}

function xRange() {
  const now = Date.now() / 1000;
  const first = state.points.length ? state.points[0].t / 1000 : now;
  return [now - Math.min(HISTORY_S, Math.max(60, now - first)), now];
}

function chartData(series) {
  const xs = state.points.map((p) => p.t / 1000);
  return [xs, ...series.map(([, key]) => state.points.map((p) => p[key]))];
}

function renderLive() {
  for (const [name, series] of Object.entries(SERIES)) {
    state.charts[name] ??= makeChart(`chart-${name}`, series);
    state.charts[name].setData(chartData(series));
  }
  const last = state.points.at(-1);
  const recent = state.points.slice(-10);
  const mean = (key) => {
    const vs = recent.map((p) => p[key]).filter((v) => v !== null);
    return vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
  };
  const kpis = [
    ["records in / s", fmt(mean("rows_in"))],
    ["written / s", fmt(mean("rows_written"))],
    ["rejected / s", fmt(mean("rows_rejected"), 1)],
    ["latency p99, ms", fmt(last?.latency_p99_ms ?? null, 1)],
    ["Kafka lag", fmt(state.health?.kafka.state === "ok" && state.health.lag.length
      ? state.health.lag.reduce((a, l) => a + l.lag, 0) : null)],
  ];
  $("kpis").replaceChildren(...kpis.map(([label, value]) => {
    const d = el("div", label, "kpi");
    d.prepend(el("b", value));
    return d;
  }));
}

async function pollSeries() {
  const data = await api(`/api/series?after=${state.after}`);
  for (const p of data.points) {
    state.points.push(p);
    if (p.batches > 0) state.lastBatchAt = p.t;
  }
  if (state.points.length) state.after = state.points.at(-1).t;
  state.points = state.points.slice(-HISTORY_S);
  renderLive();
}

function renderLag(h) {
  const tbody = $("lag").tBodies[0];
  $("lag-note").textContent = h.kafka.state === "off" ? h.kafka.detail
    : h.lag.length ? "" : "no partition stored yet";
  tbody.replaceChildren(...h.lag.map((l) => {
    const tr = el("tr");
    tr.append(el("td", l.pipeline), el("td", l.topic), el("td", l.partition, "num"), el("td", fmt(l.end_offset), "num"),
      el("td", l.written_offset === null ? "–" : fmt(l.written_offset), "num"), el("td", fmt(l.lag), "num"));
    return tr;
  }));
}

const time = (ms) => (ms === null || ms === undefined ? "–" : new Date(ms).toLocaleString());

function renderRuns(h) {
  $("runs-note").textContent = h.postgres.state !== "ok" ? h.postgres.detail
    : h.runs.length ? "" : "no batch run loaded yet (quiver batch, or the Airflow DAG)";
  $("runs").tBodies[0].replaceChildren(...h.runs.map((r) => {
    const tr = el("tr");
    const missing = r.in_cassandra === null ? "–" : fmt(r.checked - r.in_cassandra);
    tr.append(el("td", r.run_id), el("td", time(r.loaded_at_ms)),
      el("td", `${time(r.first_event_ms)} – ${time(r.last_event_ms)}`), el("td", fmt(r.rows), "num"),
      el("td", fmt(r.checked), "num"), el("td", r.in_cassandra === null ? "not asked" : fmt(r.in_cassandra), "num"),
      el("td", missing, "num"));
    return tr;
  }));
}

async function pollOverview() {
  const o = await api("/api/overview");
  $("version").textContent = `v${o.version}`;
  $("row-limit").textContent = fmt(o.sql_row_limit);
  $("window-note").textContent = `(the last ${fmt(o.window_rows)} rows each pipeline wrote, through DataFusion SQL)`;
  const select = $("pipeline");
  const names = o.pipelines.map((p) => p.name);
  if (select.options.length !== names.length) {
    select.replaceChildren(...names.map((n) => el("option", n)));
    const first = state.pipeline === null;
    state.pipeline ??= names[0] ?? null;
    select.value = state.pipeline;
    if (first) {
      pollRejects();
      pollAnalytics();
    }
  }
  if (JSON.stringify(o.links) !== JSON.stringify(state.links)) {
    state.links = o.links;
    renderLinks(o.links);
  }
  state.health = o.health;
  renderLag(o.health);
  renderRuns(o.health);
}

// --- tables and analytics over the window -----------------------------------------------

function fillTable(table, columns, rows, numeric) {
  const head = el("tr");
  head.append(...columns.map((c) => el("th", c)));
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    tr.append(...row.map((v, i) => el("td", v === null ? "" : v, numeric(i, v) ? "num" : "")));
    tbody.append(tr);
  }
  table.replaceChildren(thead, tbody);
}

async function pollRejects() {
  if (!state.pipeline) return;
  const table = quoted(`${state.pipeline}_rejects`);
  try {
    const r = await sql(`SELECT rejected_at, kafka_partition, kafka_offset, reason, raw_value FROM ${table} ORDER BY rejected_at DESC, kafka_offset DESC LIMIT 20`);
    $("rejects-note").textContent = r.rows.length ? "" : "no rejects in the window";
    const tbody = $("rejects").tBodies[0];
    tbody.replaceChildren(...r.rows.map(([at, partition, offset, reason, raw]) => {
      const tr = el("tr");
      tr.append(el("td", at), el("td", partition, "num"), el("td", offset, "num"), el("td", reason), el("td", raw ?? "(null)", "raw"));
      return tr;
    }));
  } catch (e) {
    if (!(e instanceof Unauthorized)) $("rejects-note").textContent = e.message;
  }
}

function bars(target, rows) {
  const max = Math.max(1, ...rows.map((r) => r[1]));
  target.replaceChildren(...rows.map(([label, n]) => {
    const row = el("div", null, "row");
    const bar = el("span", null, "bar");
    bar.style.width = `${(100 * n) / max}%`;
    const track = el("div");
    track.append(bar);
    row.append(el("span", label ?? "(none)"), track, el("span", fmt(n), "n"));
    return row;
  }));
  if (!rows.length) target.replaceChildren(el("p", "no rows in the window yet", "muted"));
}

const ANALYTICS = {
  "by-gender": (t) => `SELECT gender, count(*) AS users FROM ${t} GROUP BY gender ORDER BY users DESC`,
  // The address ends with the country (see pipelines/users.sql).
  "by-country": (t) => `SELECT split_part(address, ', ', -1) AS country, count(*) AS users FROM ${t} GROUP BY country ORDER BY users DESC, country LIMIT 10`,
  "by-age": (t) => `SELECT concat(CAST(band AS VARCHAR), '–', CAST(band + 9 AS VARCHAR)) AS age, users FROM (SELECT CAST(floor((date_part('epoch', now()) - date_part('epoch', dob)) / 31557600 / 10) * 10 AS BIGINT) AS band, count(*) AS users FROM ${t} WHERE dob IS NOT NULL GROUP BY band) ORDER BY band`,
  "by-year": (t) => `SELECT CAST(date_part('year', registered_date) AS BIGINT) AS year, count(*) AS users FROM ${t} WHERE registered_date IS NOT NULL GROUP BY year ORDER BY year`,
};

async function pollAnalytics() {
  if (!state.pipeline) return;
  const t = quoted(state.pipeline);
  await Promise.all(Object.entries(ANALYTICS).map(async ([id, query]) => {
    const target = $(id);
    try {
      const r = await sql(query(t));
      if (id === "by-year") {
        state.charts.year ??= new uPlot({
          width: Math.max(target.clientWidth, 300), height: 220,
          scales: { x: { time: false } },
          axes: [{ values: (_, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : "")) }, { size: 60 }],
          series: [{ label: "year" }, { label: "registrations", stroke: "#3867d6", fill: "rgba(56,103,214,0.15)" }],
        }, [[], []], target);
        state.charts.year.setData([r.rows.map((x) => x[0]), r.rows.map((x) => x[1])]);
        target.dataset.rows = r.rows.length;
      } else {
        bars(target, r.rows);
      }
    } catch (e) {
      if (!(e instanceof Unauthorized)) target.replaceChildren(el("p", e.message, "error"));
    }
  }));
}

// --- the SQL box ------------------------------------------------------------------------

async function runSql(event) {
  event?.preventDefault();
  const status = $("sql-status");
  status.className = "";
  status.textContent = "running…";
  try {
    const r = await sql($("sql").value);
    fillTable($("sql-result"), r.columns.map((c) => c.name), r.rows, (_, v) => typeof v === "number");
    status.textContent = `${fmt(r.rows_total)} row(s) in ${fmt(r.elapsed_ms, 1)} ms` +
      (r.truncated ? `; the first ${fmt(r.limit)} shown` : "");
  } catch (e) {
    status.className = "error";
    status.textContent = e.message;
    $("sql-result").replaceChildren();
  }
}

// --- the loop ---------------------------------------------------------------------------

function every(ms, job) {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      await job();
    } finally {
      running = false;
    }
  };
  tick();
  setInterval(tick, ms);
}

async function live() {
  try {
    await pollOverview();
    await pollSeries();
    state.serviceDown = null;
  } catch (e) {
    if (!(e instanceof Unauthorized)) {
      state.serviceDown = `does not answer (${e.message}); last data ${state.after ? new Date(state.after).toLocaleTimeString() : "never"}`;
    }
  }
  renderParts();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value;
  sessionStorage.setItem("quiver-token", state.token);
  $("token-form").hidden = true;
  live();
});
$("pipeline").addEventListener("change", () => {
  state.pipeline = $("pipeline").value;
  pollRejects();
  pollAnalytics();
});
$("sql-form").addEventListener("submit", runSql);
$("sql").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) runSql(event);
});

every(STEP_MS, live);
every(REJECTS_EVERY_MS, pollRejects);
every(ANALYTICS_EVERY_MS, pollAnalytics);
