// The /simulator/ page: talks to the JSON API and the /ws/simulator/ socket. No framework.
(() => {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const csrf = () => (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const usd = (v) => (v === null || v === undefined ? "–" : `$${Number(v).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 })}`);
  const signed = (v) => `<span class="${Number(v) >= 0 ? "pos" : "neg"}">${usd(v)}</span>`;
  const time = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) : "–");
  const results = (body) => (Array.isArray(body) ? body : body.results || []);

  async function api(path, options = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
    if (options.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = csrf();
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(path, init);
    let body = null;
    try { body = await response.json(); } catch { body = null; }
    if (!response.ok) { const err = new Error(`HTTP ${response.status}`); err.status = response.status; err.body = body; throw err; }
    return body;
  }

  // --- Trade status is derived from the clock, so it moves without a reload ----------------
  // Queued while an order is on its way (no arrival outcome yet), whatever the clock says.
  function tradeStatus(trade, now = Date.now()) {
    if (!trade.arrival_outcome || now < Date.parse(trade.executed_at)) return "queued";
    if (now < Date.parse(trade.settled_at)) return "executed";
    return "settled";
  }

  // --- Execution at arrival ----------------------------------------------------------------
  // The outcome once every order has arrived; "queued" while one is on its way.
  const outcomeBadge = (trade) => {
    const outcome = trade.arrival_outcome || "queued";
    return `<span class="outcome ${esc(outcome)}" data-outcome>${esc(outcome)}</span>`;
  };
  // Once the pair resolved: paid, and flagged when the venues resolved it differently.
  const resolutionBadge = (trade) => {
    if (!trade.resolved_at) return "";
    return trade.resolution_disagreement
      ? ` <span class="outcome disagreement" data-resolution title="the venues resolved this question differently">venues disagreed</span>`
      : ` <span class="outcome resolved" data-resolution>resolved</span>`;
  };
  const cents = (v) => (v === null || v === undefined ? "–" : `${esc(v)}¢`);
  const offsetMs = (from, iso) => (iso ? Math.round(Date.parse(iso) - Date.parse(from)) : null);

  // decided -> sent -> arrived (-> unwind sent -> unwind arrived), each at +ms from the decision.
  function legTimeline(trade, leg) {
    const steps = [["decided", trade.decided_at, true]];
    if (leg.state === "waiting") steps.push(["waiting for the first leg", null, false]);
    else if (leg.state === "not_sent") steps.push(["not sent", null, true]);
    else {
      steps.push(["sent", leg.sent_at, true]);
      steps.push([leg.state === "arrived" ? "arrived" : "arrives", leg.arrived_at, leg.state === "arrived"]);
    }
    if (leg.unwind) {
      steps.push(["unwind sent", leg.unwind.sent_at, true]);
      steps.push([leg.unwind.book ? "unwind arrived" : "unwind arrives", leg.unwind.arrived_at, Boolean(leg.unwind.book)]);
    }
    return `<ol class="timeline" data-timeline>${steps.map(([label, at, done]) => {
      const ms = offsetMs(trade.decided_at, at);
      return `<li class="${done ? "done" : "pending"}"><span>${esc(label)}</span><small>${ms === null ? "" : `+${esc(ms)} ms`}</small></li>`;
    }).join("")}</ol>`;
  }

  const filledAt = (fills, price) => (fills || []).filter((f) => Number(f.price) === Number(price)).reduce((n, f) => n + Number(f.size), 0);

  // The asks the validation saw beside the asks at arrival: per arrival level, what this order
  // could take (after competition and the run's own takes) and what it took.
  function legBooks(leg) {
    const seen = (leg.book || []).map((lvl) => `<tr><td>${esc(lvl.price)}</td><td>${esc(lvl.size)}</td></tr>`).join("")
      || `<tr><td colspan="2" class="empty">no asks</td></tr>`;
    let arrival;
    if (leg.arrival_book === null || leg.arrival_book === undefined) {
      arrival = `<tr><td colspan="4" class="empty">${leg.state === "not_sent" ? "not sent" : "on its way"}</td></tr>`;
    } else if (!leg.arrival_book.length) {
      arrival = `<tr><td colspan="4" class="empty">no asks at arrival</td></tr>`;
    } else {
      arrival = leg.arrival_book.map((lvl, i) => {
        const available = (leg.arrival_available || [])[i];
        const took = filledAt(leg.fills, lvl.price);
        return `<tr class="${took ? "took" : ""}"><td>${esc(lvl.price)}</td><td>${esc(lvl.size)}</td>
          <td class="${available && Number(available.size) > 0 ? "avail" : ""}">${available ? esc(available.size) : ""}</td><td>${took ? esc(took) : ""}</td></tr>`;
      }).join("");
    }
    return `<div class="books">
      <table data-book="seen"><caption>asks seen at validation</caption><thead><tr><th>price</th><th>size</th></tr></thead><tbody>${seen}</tbody></table>
      <table data-book="arrival"><caption>asks at arrival (limit ${esc(leg.limit_price)})</caption><thead><tr><th>price</th><th>size</th><th>available</th><th>taken</th></tr></thead><tbody>${arrival}</tbody></table>
    </div>`;
  }

  function legUnwind(leg) {
    const u = leg.unwind;
    if (!u) return leg.carried_size && Number(leg.carried_size) > 0
      ? `<p><small>carried unhedged:</small> ${esc(leg.carried_size)} contracts, marked ${usd(leg.carried_mark_usd)}</p>` : "";
    const bids = u.book === null
      ? `<tr><td colspan="3" class="empty">on its way</td></tr>`
      : (u.book.length ? u.book.map((lvl) => {
        const sold = filledAt(u.fills, lvl.price);
        return `<tr class="${sold ? "took" : ""}"><td>${esc(lvl.price)}</td><td>${esc(lvl.size)}</td><td>${sold ? esc(sold) : ""}</td></tr>`;
      }).join("") : `<tr><td colspan="3" class="empty">no bids at arrival</td></tr>`);
    return `<div class="unwind" data-unwind><h5>Unwind: sell ${esc(u.size)} back</h5>
      <table data-book="unwind"><caption>bids at the unwind's arrival</caption><thead><tr><th>price</th><th>size</th><th>sold</th></tr></thead><tbody>${bids}</tbody></table>
      <div class="kv"><div><small>proceeds</small>${usd(u.proceeds_usd)}</div><div><small>fee</small>${usd(u.fee_usd)}</div>
      ${Number(leg.carried_size) > 0 ? `<div><small>carried</small>${esc(leg.carried_size)} (${usd(leg.carried_mark_usd)})</div>` : ""}</div>
      ${u.detail ? `<p class="warn"><small>${esc(u.detail)}</small></p>` : ""}</div>`;
  }

  // --- Trades table --------------------------------------------------------------------------
  const trades = new Map();
  function renderTradeRow(trade, fresh = false) {
    const tbody = $("#trades tbody");
    tbody.querySelector("tr.empty")?.remove();
    let row = tbody.querySelector(`tr[data-trade-id="${trade.id}"]`);
    const isNew = !row;
    if (isNew) {
      row = document.createElement("tr"); row.dataset.tradeId = trade.id; row.className = "clickable";
      row.dataset.runId = trade.run_id; row.title = `run ${trade.run_id}`;
    }
    const status = tradeStatus(trade);
    row.innerHTML = `<td>${esc(trade.id)}</td><td>${time(trade.decided_at)}</td><td>${esc(trade.opportunity_key)}</td>
      <td><span class="status ${status}" data-status>${status}</span></td><td>${outcomeBadge(trade)}${resolutionBadge(trade)}</td><td>${esc(trade.matched_size)}/${esc(trade.requested_size)}</td>
      <td>${Math.round(Number(trade.fill_pct) * 100)}%</td><td>${usd(trade.cost_usd)}</td><td>${signed(trade.expected_pnl_usd)}</td>
      <td><button class="link-dark" data-detail="${esc(trade.id)}">details</button></td>`;
    if (isNew) {
      // Newest first: insert by id so a late frame does not reorder the table.
      const after = [...tbody.rows].find((r) => Number(r.dataset.tradeId) < Number(trade.id));
      tbody.insertBefore(row, after || null);
      if (fresh) row.classList.add("fresh");
    }
    trades.set(String(trade.id), trade);
  }
  function tickStatuses() {
    for (const row of $("#trades tbody").rows) {
      const trade = trades.get(row.dataset.tradeId);
      if (!trade) continue;
      const badge = row.querySelector("[data-status]");
      const status = tradeStatus(trade);
      if (badge.textContent !== status) { badge.textContent = status; badge.className = `status ${status}`; }
    }
  }

  // --- Trade detail modal --------------------------------------------------------------------
  async function openTrade(id) {
    const modal = $("#trade-modal");
    $("#trade-detail").innerHTML = "<p class='empty'>Loading…</p>";
    if (!modal.open) modal.showModal();
    try {
      const t = await api(`/simulator/trades/${encodeURIComponent(id)}`);
      const legs = (t.legs || []).map((leg) => `
        <section class="leg" data-leg="${esc(leg.venue)}">
        <h4>${esc(leg.venue)} · ${esc(leg.side).toUpperCase()} · <code>${esc(leg.instrument_id)}</code></h4>
        ${legTimeline(t, leg)}
        <div class="kv"><div><small>order</small>${esc(leg.order_type || "–").toUpperCase()} ${esc(leg.size ?? "")} @ ≤ ${esc(leg.limit_price)}</div>
          <div><small>filled</small>${esc(leg.filled_size ?? "–")}</div><div><small>avg fill</small>${esc(leg.avg_fill_price ?? "–")}</div>
          <div><small>fee</small>${usd(leg.fee_usd)}</div><div><small>unhedged</small>${esc(leg.unhedged_size ?? "0")}</div></div>
        ${leg.detail ? `<p class="warn"><small>${esc(leg.detail)}</small></p>` : ""}
        ${legBooks(leg)}
        ${legUnwind(leg)}
        </section>`).join("");
      const checks = (t.checks || []).map((c) => `<tr><td>${c.ok ? "✔" : "✘"}</td><td><code>${esc(c.name)}</code></td><td>${esc(c.detail)}</td></tr>`).join("");
      const validation = t.validation ? `<pre>${esc(JSON.stringify(t.validation, null, 2))}</pre>` : "<p class='empty'>none</p>";
      $("#trade-detail").innerHTML = `
        <h3>Trade ${esc(t.id)} · ${esc(t.opportunity_key)} · <span class="status ${tradeStatus(t)}">${tradeStatus(t)}</span> ${outcomeBadge(t)}</h3>
        <div class="kv" data-edges>
          <div><small>signal edge</small>${cents(t.signal_edge_cents)}</div><div><small>realised edge</small>${cents(t.realised_edge_cents)}</div>
          <div><small>slippage</small>${cents(t.slippage_cents)}</div><div><small>unwind cost</small>${usd(t.unwind_cost_usd)}</div>
          <div><small>carried (mark)</small>${usd(t.carried_mark_usd)}</div><div><small>reserved at decision</small>${usd(t.reserved_usd)}</div>
        </div>
        <div class="kv">
          <div><small>requested / ordered</small>${esc(t.requested_size)} / ${esc(t.order_size)}</div><div><small>matched (hedged)</small>${esc(t.matched_size)} (${Math.round(Number(t.fill_pct) * 100)}%)</div>
          <div><small>cost</small>${usd(t.cost_usd)}</div><div><small>fees</small>${usd(t.fees_usd)}</div><div><small>expected P&amp;L</small>${signed(t.expected_pnl_usd)}</div>
          <div><small>decided</small>${time(t.decided_at)}</div><div><small>executed</small>${time(t.executed_at)}</div><div><small>settled</small>${time(t.settled_at)}</div>
          <div><small>settlement delay</small>${esc(t.settlement_delay_s)} s</div><div><small>run / intent</small>${esc(t.run_id)} / ${esc(t.intent_id)}</div>
        </div>
        <div class="kv" data-resolution-detail>
          <div><small>resolved</small>${time(t.resolved_at)}</div><div><small>payout</small>${usd(t.payout_usd)}</div>
          <div><small>realised P&amp;L</small>${t.realised_pnl_usd === null || t.realised_pnl_usd === undefined ? "–" : signed(t.realised_pnl_usd)}</div>
        </div>
        ${t.resolution_disagreement ? `<p class="warn" data-disagreement>The venues resolved this question differently: the legs paid as each venue resolved, not as a hedge.</p>` : ""}
        <h4>Legs</h4>${legs}
        <h4>Checks</h4><table><tbody>${checks}</tbody></table>
        <h4>Exchange validation</h4>${validation}`;
    } catch (err) {
      $("#trade-detail").innerHTML = `<p class="error">Could not load trade ${esc(id)} (${esc(err.message)}).</p>`;
    }
  }

  // --- Running runs --------------------------------------------------------------------------
  function timeLeft(run) {
    if (!run.ends_at) return "until stopped";
    const ms = Date.parse(run.ends_at) - Date.now();
    if (ms <= 0) return "ending";
    const h = Math.floor(ms / 3600000), m = Math.floor((ms % 3600000) / 60000);
    return h >= 24 ? `${Math.floor(h / 24)} d ${h % 24} h` : `${h} h ${m} min`;
  }
  // A run's execution settings, compactly: time in force and median latency per venue; then how
  // the legs are sent and what happens to an unhedged excess.
  const SEQUENCING = { together: "legs together", kalshi_first: "Kalshi first", polymarket_first: "Polymarket first" };
  function executionRows(e) {
    if (!e) return "";
    const order = (venue, type, ms) => `${venue} ${esc(String(type).toUpperCase())} ${esc(ms)} ms`;
    return `<dt>orders</dt><dd data-field="orders" title="time in force and median latency per venue">` +
      `${order("K", e.kalshi_order_type, e.kalshi_latency_ms)} · ${order("P", e.polymarket_order_type, e.polymarket_latency_ms)}</dd>` +
      `<dt>legs</dt><dd data-field="legs">${esc(SEQUENCING[e.sequencing] || e.sequencing)}, ${esc(e.unhedged)} excess</dd>`;
  }
  function renderRunning(runs) {
    const box = $("#running-runs");
    if (!runs.length) { box.innerHTML = `<p class="empty">No run is running. Start one with the form.</p>`; return; }
    box.innerHTML = runs.map((run) => `
      <div class="run-card" data-run-id="${esc(run.id)}">
        <h3>#${esc(run.id)} ${esc(run.label || "unlabelled")}</h3>
        <dl><dt>balance</dt><dd data-field="balance">${usd(run.balance_usd)}</dd>
            <dt>P&amp;L (exp.)</dt><dd>${signed(run.expected_pnl_usd)}</dd>
            <dt>P&amp;L (realised)</dt><dd data-field="realised">${signed(run.realised_pnl_usd ?? run.pnl_usd)}</dd>
            <dt>reserved</dt><dd data-field="reserved">${usd(run.reserved_usd)}</dd>
            <dt>unhedged</dt><dd data-field="unhedged">${usd(run.unhedged_exposure_usd)} <small>(${esc(run.unhedged_contracts ?? "0")} contracts)</small></dd>
            <dt>trades</dt><dd data-field="trades">${esc(run.trade_count)}</dd>
            <dt>decisions</dt><dd>${esc(run.decision_count)}</dd>
            <dt>watching</dt><dd>${run.opportunity_keys && run.opportunity_keys.length ? esc(run.opportunity_keys.join(", ")) : "all keys"}</dd>
            <dt>time left</dt><dd>${timeLeft(run)}</dd>
            ${executionRows(run.execution)}</dl>
        <button class="danger" data-stop="${esc(run.id)}">Stop</button>
      </div>`).join("");
  }

  // --- History and equity curve --------------------------------------------------------------
  function renderHistory(runs) {
    const tbody = $("#history tbody");
    if (!runs.length) { tbody.innerHTML = `<tr class="empty"><td colspan="8">No runs yet.</td></tr>`; return; }
    tbody.innerHTML = runs.map((run) => `
      <tr class="clickable" data-run-id="${esc(run.id)}" title="${esc(run.notes || "")}">
        <td>${esc(run.id)}</td><td>${esc(run.label || "–")}</td><td>${esc(run.status)}</td><td>${time(run.started_at)}</td>
        <td>${esc(run.trade_count)}</td><td>${usd(run.balance_usd)}</td><td>${signed(run.expected_pnl_usd)}</td>
        <td data-field="realised">${signed(run.realised_pnl_usd ?? run.pnl_usd)}</td></tr>`).join("");
  }
  // --- Chart axes follow the data ------------------------------------------------------------
  // uPlot gives a time axis with a single instant 86,400 / 1e-3 s (about 2.7 years) and a flat
  // series a range from zero; a lone point or a flat line gets a window around it instead.
  const LONE_INSTANT_WINDOW_S = 300;
  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return [lo, hi];
  }
  function timeRange(u, min, max) {
    const [lo, hi] = extent(u.data[0]);
    return lo === hi ? [lo - LONE_INSTANT_WINDOW_S, hi + LONE_INSTANT_WINDOW_S] : [min, max];
  }
  function valueRange(u, min, max) {
    if (min === null || max === null) return [min, max];
    if (min === max) { const pad = Math.max(Math.abs(min) * 0.01, 1); return [min - pad, max + pad]; }
    return uPlot.rangeNum(min, max, 0.1, true);
  }
  // A canvas has no text: the plot area's label says what its axes show (screen readers, tests).
  function describeWindow(u, what) {
    const x = u.scales.x, y = u.scales[u.series[1].scale];
    const at = (s) => time(new Date(s * 1000));
    const area = u.root.querySelector(".u-wrap");
    area.setAttribute("role", "img");
    area.setAttribute("aria-label", `${what} from ${at(x.min)} to ${at(x.max)} UTC; balance axis ${usd(y.min)} to ${usd(y.max)}`);
  }

  let equityPlot = null;
  async function showEquity(runId) {
    const box = $("#equity-chart");
    try {
      const body = await api(`/simulator/runs/${encodeURIComponent(runId)}/equity`);
      const points = results(body.points ? body.points : body);
      $("#equity-title").innerHTML = `<h3>Run ${esc(runId)}: balance, expected and realised P&amp;L</h3>`;
      if (equityPlot) { equityPlot.destroy(); equityPlot = null; }
      if (!points.length) { box.innerHTML = `<p class="empty">No trades in this run yet.</p>`; return; }
      box.innerHTML = "";
      const xs = points.map((p) => Date.parse(p.at || p.decided_at || p.time) / 1000);
      const balance = points.map((p) => Number(p.balance_usd));
      const pnl = points.map((p) => Number(p.expected_pnl_usd ?? p.pnl_usd));
      // Realised P&L moves when a trade's pair resolves (its payout in, its cost counted).
      const realised = points.map((p) => Number(p.realised_pnl_usd ?? 0));
      equityPlot = new uPlot({
        width: Math.max(280, box.clientWidth || 500), height: 220,
        scales: { x: { time: true, range: timeRange }, y: { range: valueRange }, pnl: { range: valueRange } },
        series: [{}, { label: "balance $", stroke: "#2563eb" }, { label: "exp. P&L $", stroke: "#137333", scale: "pnl" },
          { label: "realised P&L $", stroke: "#b45309", scale: "pnl", dash: [6, 3] }],
        axes: [{}, {}, { side: 1, scale: "pnl", grid: { show: false } }],
        hooks: { setScale: [(u, key) => { if (key === "x") describeWindow(u, `Run ${runId} equity`); }] },
      }, [xs, balance, pnl, realised], box);
      // The points where a trade's pair resolved, named under the chart (a canvas has no text).
      const resolved = points.filter((p) => p.event === "resolved");
      if (resolved.length) {
        const note = document.createElement("p");
        note.dataset.field = "resolved-points";
        const last = resolved[resolved.length - 1];
        note.textContent = `${resolved.length} resolved ${resolved.length === 1 ? "point" : "points"}, the last at ${time(last.at)} UTC: realised P&L ${usd(last.realised_pnl_usd)}`;
        box.append(note);
      }
    } catch (err) {
      box.innerHTML = `<p class="error">Could not load the equity curve (${esc(err.message)}).</p>`;
    }
  }

  // --- Report --------------------------------------------------------------------------------
  let reportPlot = null;
  const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000];
  const reportMinEdge = () => $("#report-min-edge")?.value || "1";
  // What the window's orders met at their venues, beside the capture figures above: outcomes,
  // slippage (signal vs realised edge), legging and unwind cost, misses and latency per venue.
  function figure(label, value, field) {
    const cell = document.createElement("div");
    cell.dataset.field = field;
    const small = document.createElement("small");
    small.textContent = label;
    cell.append(small, value);
    return cell;
  }
  const countsText = (counts) => Object.entries(counts || {}).map(([key, n]) => `${key} ${n}`).join(", ");
  function arrivalFigures(r) {
    const box = document.createElement("div");
    box.className = "kv";
    const slippage = r.slippage_cents || {};
    const outcomes = countsText(r.arrival_outcomes);
    const latency = Object.entries(r.arrival_latency_ms || {})
      .map(([venue, l]) => `${venue} ${l.p50 ?? "–"} / ${l.p99 ?? "–"} ms (${l.orders} orders)`).join(" · ");
    box.append(
      figure("trades arrived (in flight)", `${r.trades_arrived ?? 0} (${r.trades_in_flight ?? 0})`, "arrived"),
      figure("outcomes at arrival", outcomes || "–", "outcomes"),
      figure(`slippage p50 / p95 (signal − realised edge, ${slippage.trades ?? 0} trades)`,
        `${slippage.p50 ?? "–"} / ${slippage.p95 ?? "–"} ¢`, "slippage"),
      figure("legging incidents, unwind cost", `${r.legging_incidents ?? 0}, ${usd(r.unwind_cost_usd ?? 0)}`, "legging"),
      figure("missed at arrival", countsText(r.missed_at_arrival) || "none", "missed-at-arrival"),
      figure("arrival latency p50 / p99", latency || "–", "arrival-latency"),
    );
    const section = document.createElement("div");
    section.id = "report-arrival";
    const title = document.createElement("h3");
    title.textContent = "Orders at arrival";
    section.append(title, box);
    return section;
  }
  async function loadReport() {
    try {
      const r = await api(`/simulator/report?hours=24&max_gap_s=120&min_edge_cents=${encodeURIComponent(reportMinEdge())}`);
      const latency = r.latency_s || {};
      $("#report-summary").innerHTML = `<div class="kv">
        <div><small>spans</small>${esc(r.spans)}</div><div><small>captured</small>${esc(r.captured)}</div><div><small>missed</small>${esc(r.missed)}</div>
        <div><small>capture rate</small>${r.capture_rate === null ? "–" : `${Math.round(Number(r.capture_rate) * 100)}%`}</div>
        <div><small>latency p50 / p95</small>${latency.p50 ?? "–"} / ${latency.p95 ?? "–"} s</div>
        <div><small>edge captured / available</small>${usd(r.edge_captured_usd)} / ${usd(r.edge_available_usd)}</div>
        <div><small>realised P&amp;L (${esc(r.trades_resolved ?? 0)} resolved)</small>${signed(r.realised_pnl_usd ?? 0)}</div>
        <div data-field="disagreements"><small>resolution disagreements</small>${esc(r.resolution_disagreements ?? 0)} pairs, cost ${usd(r.resolution_disagreement_cost_usd ?? 0)}</div></div>
        ${Object.keys(r.missed_reasons || {}).length ? `<p><small>missed because: ${Object.entries(r.missed_reasons).map(([k, n]) => `${esc(k)} ${esc(n)}`).join(", ")}</small></p>` : ""}`;
      $("#report-summary").append(arrivalFigures(r));
      const rows = r.by_opportunity_key || [];
      const box = $("#report-chart");
      if (reportPlot) { reportPlot.destroy(); reportPlot = null; }
      if (!rows.length) { box.innerHTML = `<p class="empty">No success spans in the last 24 h.</p>`; return; }
      box.innerHTML = "";
      const bars = uPlot.paths.bars({ size: [0.6, 60] });
      reportPlot = new uPlot({
        width: Math.max(280, box.clientWidth || 500), height: 200,
        // One slot per key, centred, whatever the count (uPlot widens a lone x to 0-100);
        // counts from zero, at least 0-1.
        scales: {
          x: { time: false, range: () => [-0.5, rows.length - 0.5] },
          y: { range: (u, min, max) => [0, Math.max(1, max ?? 0) * 1.1] },
        },
        axes: [{ incrs: COUNT_STEPS, values: (u, ticks) => ticks.map((i) => rows[i]?.opportunity_key ?? "") }, { incrs: COUNT_STEPS }],
        series: [{}, { label: "captured", fill: "#86efac", stroke: "#137333", paths: bars }, { label: "missed", fill: "#fca5a5", stroke: "#b42318", paths: bars }],
      }, [rows.map((_, i) => i), rows.map((k) => Number(k.captured)), rows.map((k) => Number(k.missed))], box);
    } catch (err) {
      $("#report-summary").innerHTML = `<p class="error">Could not load the report (${esc(err.message)}).</p>`;
    }
  }

  // --- Status refresh ------------------------------------------------------------------------
  // A session that ends elsewhere sends the page to the login form; logging out here already
  // goes there, and its own redirect must win over the refresh or socket that notices first.
  let loggingOut = false;
  document.querySelector("form[action$='/logout/']")?.addEventListener("submit", () => { loggingOut = true; });
  function toLogin() { if (!loggingOut) window.location = "/accounts/login/?next=/simulator/"; }
  async function refresh() {
    try {
      const [status, history] = await Promise.all([api("/simulator/status"), api("/simulator/runs")]);
      renderRunning(status.runs || []);
      for (const trade of [...(status.recent_trades || [])].reverse()) renderTradeRow(trade);
      renderHistory(results(history));
    } catch (err) {
      if (err.status === 401 || err.status === 403) toLogin();
    }
  }
  let refreshTimer = null;
  const refreshSoon = () => { clearTimeout(refreshTimer); refreshTimer = setTimeout(refresh, 250); };

  // --- Websocket with reconnect --------------------------------------------------------------
  let socketDelay = 500;
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${proto}://${location.host}/ws/simulator/`);
    const state = $("#socket-state");
    socket.onopen = () => { socketDelay = 500; state.textContent = "● live"; state.className = "ok"; refresh(); };
    socket.onmessage = (message) => {
      let frame; try { frame = JSON.parse(message.data); } catch { return; }
      if (frame.event === "simulator:trade" && frame.data) { renderTradeRow(frame.data, true); refreshSoon(); }
      if (frame.event === "simulator:run") refreshSoon();
    };
    socket.onclose = (event) => {
      if (event.code === 4401) { toLogin(); return; }  // logged out
      state.textContent = "○ reconnecting"; state.className = "warn";
      setTimeout(connect, socketDelay); socketDelay = Math.min(socketDelay * 2, 10000);
    };
  }

  // --- Start form ----------------------------------------------------------------------------
  async function loadPairs() {
    try {
      const pairs = results(await api("/simulator/pairs"));
      $("#pair-select").innerHTML = pairs.map((p) => {
        const key = p.opportunity_key || p;
        return `<option value="${esc(key)}">${esc(key)}${p.title ? ` · ${esc(p.title)}` : ""}</option>`;
      }).join("");
    } catch { /* the empty-state notice already says when there are no pairs */ }
  }
  async function startRun(event) {
    event.preventDefault();
    const form = event.target;
    form.querySelectorAll("[data-error-for]").forEach((el) => { el.textContent = ""; });
    $("#start-warnings").innerHTML = "";
    const data = new FormData(form);
    const body = {
      starting_usd: data.get("starting_usd"),
      opportunity_keys: data.getAll("opportunity_keys"),
      // An empty box is left out (the API's default, 0: until stopped); null would be refused.
      duration_minutes: data.get("duration_minutes") === "" ? undefined : data.get("duration_minutes"),
      label: data.get("label"), notes: data.get("notes"),
    };
    // The execution settings; an empty latency box is left out too (the API's default).
    for (const input of form.querySelectorAll("#execution-settings [name]")) {
      if (input.value !== "") body[input.name] = input.value;
    }
    $("#start-button").disabled = true;
    try {
      const run = await api("/simulator/start", { method: "POST", body });
      $("#start-warnings").innerHTML = (run.warnings || []).map((w) => `<li>${esc(w)}</li>`).join("");
      await refresh();
    } catch (err) {
      const errors = err.body || { detail: [`Could not start the run (${err.message}).`] };
      for (const [field, messages] of Object.entries(errors)) {
        const target = form.querySelector(`[data-error-for="${field}"]`) || form.querySelector('[data-error-for="detail"]');
        target.textContent = `${field === "detail" ? "" : `${field}: `}${[].concat(messages).join(" ")}`;
      }
    } finally {
      $("#start-button").disabled = false;
    }
  }
  async function stopRun(runId) {
    try { await api("/simulator/stop", { method: "POST", body: { run_id: Number(runId) } }); }
    catch (err) { alert(`Could not stop run ${runId}: ${JSON.stringify(err.body || err.message)}`); }
    refresh();
  }

  // --- Backtests ----------------------------------------------------------------------------
  // A recording replayed for every point of a grid: started here, followed every second while
  // it runs, then compared (table, P&L against a setting, the points' equity curves, CSV).
  const BACKTEST_POLL_MS = 1000;
  const PALETTE = ["#2563eb", "#137333", "#b45309", "#b42318", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];
  const backtestPolls = new Map();
  const backtestsShown = new Map();  // id -> the latest backtest JSON
  let selectedBacktest = null;
  let backtestPnlPlot = null, backtestEquityPlot = null;

  // Each message under its field ("grid.<setting>" under that setting's box), the rest at the end.
  function showBacktestErrors(form, errors) {
    for (const [field, messages] of Object.entries(errors)) {
      const target = form.querySelector(`[data-backtest-error="${CSS.escape(field)}"]`) || form.querySelector('[data-backtest-error="detail"]');
      target.textContent = `${field === "detail" ? "" : `${field}: `}${[].concat(messages).join(" ")}`;
    }
  }

  async function loadRecordings(selected) {
    try {
      const recordings = results(await api("/simulator/recordings"));
      const select = $("#recording-select");
      const keep = selected || select.value;
      select.innerHTML = recordings.map((r) =>
        `<option value="${esc(r.name)}">${esc(r.name)} (${esc((r.size_bytes / 1e6).toFixed(1))} MB)</option>`).join("");
      if (keep && recordings.some((r) => r.name === keep)) select.value = keep;
    } catch (err) {
      $('#backtest-form [data-backtest-error="recording"]').textContent = `Could not list the recordings (${err.message}).`;
    }
  }

  async function uploadRecording() {
    const input = $("#recording-file");
    $("#upload-error").textContent = "";
    $("#upload-result").textContent = "";
    if (!input.files.length) { $("#upload-error").textContent = "file: choose a recording file first."; return; }
    const data = new FormData();
    data.append("file", input.files[0]);
    $("#recording-upload").disabled = true;
    try {
      const response = await fetch("/simulator/recordings", {
        method: "POST", body: data, credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrf() },
      });
      let body = null;
      try { body = await response.json(); } catch { body = null; }
      if (!response.ok) {
        const messages = (body && (body.file || body.detail)) || [`HTTP ${response.status}`];
        $("#upload-error").textContent = `file: ${[].concat(messages).join(" ")}`;
        return;
      }
      const s = body.summary;
      $("#upload-result").textContent = `Uploaded ${body.name}: ${s.pairs} pairs, ${s.updates.toLocaleString()} updates.`;
      input.value = "";
      await loadRecordings(body.name);
    } catch (err) {
      $("#upload-error").textContent = `file: could not upload (${err.message}).`;
    } finally {
      $("#recording-upload").disabled = false;
    }
  }

  function backtestProgress(b) {
    const p = b.progress || {};
    if (b.status === "queued") return `<progress></progress><small data-progress>queued</small>`;
    if (b.status === "running" && p.phase === "points") {
      return `<progress max="${esc(b.points_total)}" value="${esc(b.points_done)}"></progress>` +
        `<small data-progress>grid points: ${esc(b.points_done)} / ${esc(b.points_total)} done</small>`;
    }
    if (b.status === "running") return `<progress></progress><small data-progress>reading the recording: ${esc(Number(p.updates || 0).toLocaleString())} updates</small>`;
    if (b.status === "done") return `<small data-progress>${esc(b.points_total)} grid points over ${esc(Number(p.updates || 0).toLocaleString())} updates</small>`;
    return `<p class="error" data-progress>failed: ${esc(b.error)}</p>`;
  }

  function renderBacktest(b) {
    backtestsShown.set(b.id, b);
    const grid = Object.entries(b.grid || {}).map(([k, v]) => `${k}=${v.join(",")}`).join(" ") || "defaults";
    const html = `<li class="backtest${selectedBacktest === b.id ? " selected" : ""}" data-backtest-id="${esc(b.id)}">
      <div><strong>#${esc(b.id)} ${esc(b.label || "")}</strong> <span class="status ${esc(b.status)}" data-status>${esc(b.status)}</span></div>
      <div class="meta"><small>${esc(b.recording)} · ${esc(grid)} · seed ${esc(b.seed)}</small></div>
      ${backtestProgress(b)}
      ${b.status === "done" ? `<button type="button" class="link-dark" data-show-backtest="${esc(b.id)}">Compare the points</button>` : ""}
    </li>`;
    const list = $("#backtest-list");
    list.querySelector("li.empty")?.remove();
    const existing = list.querySelector(`li[data-backtest-id="${CSS.escape(String(b.id))}"]`);
    if (existing) existing.outerHTML = html;
    else list.insertAdjacentHTML("afterbegin", html);
  }

  function followBacktest(b, showWhenDone) {
    renderBacktest(b);
    if (b.status === "done" && showWhenDone) showBacktest(b.id);
    if (b.status !== "queued" && b.status !== "running") { backtestPolls.delete(b.id); return; }
    clearTimeout(backtestPolls.get(b.id));
    backtestPolls.set(b.id, setTimeout(async () => {
      try { followBacktest(await api(`/simulator/backtests/${encodeURIComponent(b.id)}`), showWhenDone); }
      catch (err) { if (err.status === 401 || err.status === 403) toLogin(); else followBacktest(b, showWhenDone); }
    }, BACKTEST_POLL_MS));
  }

  async function loadBacktests() {
    try {
      const list = results(await api("/simulator/backtests"));
      if (!list.length) return;
      $("#backtest-list").innerHTML = "";
      for (const b of [...list].reverse()) followBacktest(b, false);
    } catch { /* the list stays as it is; the next start shows its own */ }
  }

  async function startBacktest(event) {
    event.preventDefault();
    const form = event.target;
    form.querySelectorAll("[data-backtest-error]").forEach((el) => { if (el.id !== "upload-error") el.textContent = ""; });
    const grid = {};
    for (const input of form.querySelectorAll("[data-grid]")) {
      if (input.value.trim() !== "") grid[input.dataset.grid] = input.value;
    }
    const body = { grid };
    for (const input of form.querySelectorAll("[data-backtest]")) {
      if (input.value.trim() !== "") body[input.dataset.backtest] = input.value;  // blank: the default
    }
    $("#backtest-button").disabled = true;
    try {
      const started = await api("/simulator/backtests", { method: "POST", body });
      selectedBacktest = started.id;
      followBacktest(started, true);
    } catch (err) {
      showBacktestErrors(form, err.body || { detail: [`Could not start the backtest (${err.message}).`] });
    } finally {
      $("#backtest-button").disabled = false;
    }
  }

  const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(Number(v) * 1000) / 10}%`);
  const COLUMNS = [
    ["P&L (exp.)", (r) => signed(r.expected_pnl_usd)],
    ["realised", (r) => signed(r.realised_pnl_usd)],
    ["trades", (r) => esc(r.trades)],
    ["decisions", (r) => esc(r.decisions)],
    ["capture", (r) => pct(r.capture_rate)],
    ["max drawdown", (r) => usd(r.max_drawdown_usd)],
    ["slippage p50 / p95", (r) => `${cents(r.slippage_cents?.p50)} / ${cents(r.slippage_cents?.p95)}`],
    ["legged", (r) => esc(r.legging_incidents)],
    ["unwind cost", (r) => usd(r.unwind_cost_usd)],
    ["fees", (r) => usd(r.fees_usd)],
  ];

  function resultTable(settings, rows) {
    const head = [...settings, ...COLUMNS.map(([title]) => title)].map((t) => `<th>${esc(t)}</th>`).join("");
    const body = rows.map((r) => `<tr data-run-id="${esc(r.run_id)}">${settings.map((s) => `<td>${esc(r.settings[s])}</td>`).join("")}` +
      `${COLUMNS.map(([, cell]) => `<td>${cell(r)}</td>`).join("")}</tr>`).join("");
    return `<div class="scroll"><table id="backtest-table"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
  }

  const chartWidth = (box) => Math.max(280, box.clientWidth || 500);
  function labelChart(u, text) {
    const area = u.root.querySelector(".u-wrap");
    area.setAttribute("role", "img");
    area.setAttribute("aria-label", text);
  }

  // P&L against one setting: one series per combination of the other settings.
  function drawPnlChart(grid, rows) {
    const box = $("#backtest-pnl-chart");
    const setting = $("#backtest-axis").value;
    if (backtestPnlPlot) { backtestPnlPlot.destroy(); backtestPnlPlot = null; }
    box.innerHTML = "";
    const values = [...grid[setting]];  // the grid's order; numbers ascending
    const numeric = values.every((v) => Number.isFinite(Number(v)));
    if (numeric) values.sort((a, b) => Number(a) - Number(b));
    const others = Object.keys(grid).filter((s) => s !== setting);
    const groups = new Map();
    for (const r of rows) {
      const key = others.map((s) => `${s}=${r.settings[s]}`).join(" ") || "expected P&L $";
      if (!groups.has(key)) groups.set(key, new Array(values.length).fill(null));
      groups.get(key)[values.indexOf(r.settings[setting])] = Number(r.expected_pnl_usd);
    }
    const xs = values.map((v, i) => (numeric ? Number(v) : i));
    const series = [...groups.keys()].map((label, i) => ({
      label, stroke: PALETTE[i % PALETTE.length], width: 1, spanGaps: true, points: { show: true, size: 9 },
    }));
    const pad = (lo, hi) => (lo === hi ? [lo - 1, hi + 1] : [lo - (hi - lo) * 0.1, hi + (hi - lo) * 0.1]);
    backtestPnlPlot = new uPlot({
      width: chartWidth(box), height: 220,
      scales: { x: { time: false, range: (u, lo, hi) => pad(lo, hi) }, y: { range: valueRange } },
      axes: [{ label: setting, values: numeric ? undefined : (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? values[t] ?? "" : "")) },
        { label: "P&L $" }],
      series: [{ label: setting }, ...series],
    }, [xs, ...groups.values()], box);
    labelChart(backtestPnlPlot, `Expected P&L against ${setting}, ${rows.length} grid points`);
  }

  // Each point's expected P&L over the recording's time, overlaid.
  async function drawEquityCurves(rows) {
    const box = $("#backtest-equity-chart");
    const curves = await Promise.all(rows.map(async (r) => {
      const body = await api(`/simulator/runs/${encodeURIComponent(r.run_id)}/equity`);
      const byTime = new Map();
      for (const p of body.points) byTime.set(Date.parse(p.at) / 1000, Number(p.expected_pnl_usd));
      return { label: r.label, xs: [...byTime.keys()], ys: [...byTime.values()] };
    }));
    const drawn = curves.filter((c) => c.xs.length);
    box.innerHTML = "";
    if (!drawn.length) { box.innerHTML = `<p class="empty">No point traded: no equity curve to draw.</p>`; return; }
    const data = uPlot.join(drawn.map((c) => [c.xs, c.ys]));
    backtestEquityPlot = new uPlot({
      width: chartWidth(box), height: 240,
      scales: { x: { time: true, range: timeRange }, y: { range: valueRange } },
      series: [{}, ...drawn.map((c, i) => ({ label: c.label, stroke: PALETTE[i % PALETTE.length], spanGaps: true }))],
      axes: [{}, { label: "exp. P&L $" }],
    }, data, box);
    labelChart(backtestEquityPlot, `Equity curves of ${drawn.length} grid points`);
  }

  async function showBacktest(id) {
    const box = $("#backtest-result");
    selectedBacktest = Number(id);
    document.querySelectorAll("#backtest-list li.backtest").forEach((li) => li.classList.toggle("selected", li.dataset.backtestId === String(id)));
    try {
      const body = await api(`/simulator/backtests/${encodeURIComponent(id)}/results`);
      for (const plot of [backtestPnlPlot, backtestEquityPlot]) plot?.destroy();
      backtestPnlPlot = backtestEquityPlot = null;
      const settings = Object.keys(body.grid || {});
      const rows = body.results || [];
      const shown = backtestsShown.get(Number(id));
      box.innerHTML = `<h3>Backtest #${esc(id)}${shown && shown.label ? `: ${esc(shown.label)}` : ""} <small>best expected P&amp;L first</small></h3>
        <p><a id="backtest-csv" href="/simulator/backtests/${esc(id)}/results.csv" download>Download the results as CSV</a></p>
        ${resultTable(settings, rows)}
        <h4>P&amp;L against a setting</h4>
        ${settings.length ? `<label class="inline-label">setting <select id="backtest-axis">${settings.map((s) => `<option>${esc(s)}</option>`).join("")}</select></label>
          <div id="backtest-pnl-chart" class="chart"></div>` : `<p class="empty">One grid point (the defaults): no setting to plot against.</p>`}
        <h4>Equity curves <small>(expected P&amp;L of each point)</small></h4>
        <div id="backtest-equity-chart" class="chart"><p class="empty">Loading…</p></div>`;
      if (settings.length) {
        drawPnlChart(body.grid, rows);
        $("#backtest-axis").addEventListener("change", () => drawPnlChart(body.grid, rows));
      }
      await drawEquityCurves(rows);
    } catch (err) {
      const detail = err.body && err.body.detail ? [].concat(err.body.detail).join(" ") : err.message;
      box.innerHTML = `<p class="error">Could not load backtest ${esc(id)}: ${esc(detail)}</p>`;
    }
  }

  document.addEventListener("click", (event) => {
    const detail = event.target.closest("[data-detail]");
    if (detail) { openTrade(detail.dataset.detail); return; }
    const stop = event.target.closest("[data-stop]");
    if (stop) { stopRun(stop.dataset.stop); return; }
    const tradeRow = event.target.closest("#trades tr[data-trade-id]");
    if (tradeRow) { openTrade(tradeRow.dataset.tradeId); return; }
    const runRow = event.target.closest("#history tr[data-run-id]");
    if (runRow) { showEquity(runRow.dataset.runId); return; }
    const backtest = event.target.closest("[data-show-backtest]");
    if (backtest) showBacktest(backtest.dataset.showBacktest);
  });
  $("#start-form").addEventListener("submit", startRun);
  $("#backtest-form").addEventListener("submit", startBacktest);
  $("#recording-upload").addEventListener("click", uploadRecording);
  setInterval(tickStatuses, 1000);
  setInterval(refresh, 15000);
  setInterval(loadReport, 60000);
  $("#report-min-edge").addEventListener("change", loadReport);
  loadPairs(); refresh(); loadReport(); connect(); loadRecordings(); loadBacktests();
})();
