// Live policy simulator: on slider input, ask the server (same scoring as the SDK, the
// tenant's own policy) and show the answer. No framework, no build step.
(function () {
  "use strict";
  var form = document.getElementById("sim-form");
  if (!form) { return; }
  var p95 = document.getElementById("p95_ms");
  var err = document.getElementById("error_pct");
  var size = document.getElementById("sample_size");
  var seq = 0;
  var controller = null;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = value; }
  }

  function gate(id, g) {
    var el = document.getElementById(id);
    if (!el) { return; }
    var mark = el.querySelector(".mark");
    mark.textContent = g.pass ? "yes" : "no";
    mark.className = "mark " + (g.pass ? "gate-pass" : "gate-fail");
    el.querySelector(".why").textContent = g.reason;
    el.setAttribute("data-pass", g.pass ? "true" : "false");
  }

  function show(r) {
    text("sim-score", String(r.score));
    var status = document.getElementById("sim-status");
    status.textContent = r.status;
    status.className = "badge " + (r.status === "ok" ? "st-done" : r.status === "warning" ? "st-open" : "st-wait");
    gate("gate-open", r.gates.would_open);
    gate("gate-validate", r.gates.would_validate_at_once);
    gate("gate-healthy", r.gates.counts_as_healthy);
    var alerts = r.alerts.map(function (a) { return a.severity + ": " + a.reason_for_trigger; });
    text("sim-alerts", alerts.length ? alerts.join("; ") : "none");
    text("sim-error", "");
  }

  function update() {
    text("p95_ms-out", p95.value + " ms");
    text("error_pct-out", Number(err.value).toFixed(1) + " %");
    text("sample_size-out", size.value);
    var mine = ++seq;
    if (controller) { controller.abort(); }
    controller = new AbortController();
    var q = new URLSearchParams({
      p95_ms: p95.value,
      error_rate: String(Number(err.value) / 100),
      sample_size: size.value
    });
    fetch(form.getAttribute("data-api") + "?" + q.toString(), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
      signal: controller.signal
    }).then(function (resp) {
      return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
    }).then(function (res) {
      if (mine !== seq) { return; }
      if (!res.ok) { text("sim-error", res.body.error || "request refused"); return; }
      show(res.body);
    }).catch(function (e) {
      if (e && e.name === "AbortError") { return; }
      text("sim-error", "could not reach the server");
    });
  }

  [p95, err, size].forEach(function (el) { el.addEventListener("input", update); });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); update(); });
  form.setAttribute("data-live", "true");
})();
