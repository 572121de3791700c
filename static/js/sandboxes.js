// Sandboxes: selection and bulk actions, confirmations, key/value rows, live state.
// No inline scripts anywhere (the CSP forbids them): everything hangs off data-* attributes.
(function () {
  "use strict";

  var sandbar = window.sandbar || {};

  function announce(text) { if (sandbar.announce) sandbar.announce(text); }

  // Destructive actions confirm in a dialog that names what happens (static/js/app.js).

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-close-dialog]");
    if (close) {
      var box = close.closest("dialog");
      if (box) box.close();
      if (close.hasAttribute("data-refresh-after")) { clearSelection(); refreshList(); }
      return;
    }
    var add = event.target.closest("[data-kv-add]");
    if (add) { addRow(add.getAttribute("data-kv-add")); return; }
    var remove = event.target.closest("[data-kv-remove]");
    if (remove) { removeRow(remove.closest(".kv-row")); return; }
    if (event.target.closest("[data-bulk-clear]")) { clearSelection(); return; }
    var refresh = event.target.closest("[data-refresh]");
    if (refresh && document.getElementById("results") && window.htmx) {
      event.preventDefault();
      refreshList();
    }
  });

  // --- Key/value rows (labels, env, volumes). ---------------------------------------------
  function addRow(kind) {
    var box = document.querySelector('[data-kv="' + kind + '"]');
    if (!box) return;
    var rows = box.querySelectorAll(".kv-row");
    var row = rows[rows.length - 1].cloneNode(true);
    row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
    row.querySelectorAll("select").forEach(function (select) { select.selectedIndex = 0; });
    box.appendChild(row);
    var first = row.querySelector("input,select");
    if (first) first.focus();
  }
  function removeRow(row) {
    if (!row) return;
    var box = row.parentElement;
    if (box.querySelectorAll(".kv-row").length > 1) row.remove();
    else row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
  }

  // --- Selection and the bulk bar (static/js/app.js). ------------------------------------
  var selection = sandbar.selection;
  var boxes = selection.boxes, updateBulkBar = selection.update, clearSelection = selection.clear;

  // The bulk form's answer (confirmation, then report) shows in a dialog.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "bulk-body") {
      var dialog = document.getElementById("bulk-dialog");
      if (dialog && !dialog.open) dialog.showModal();
      var button = target.querySelector("button[type=submit], [data-close-dialog]");
      if (button) button.focus();
      var run = target.querySelector("[data-bulk-run]");
      if (run) runBulk(run);
    }
    if (target && target.id === "results") updateBulkBar();
  });

  // --- A confirmed bulk action: each sandbox is its own request (a one-time token each, so
  // a repeat runs nothing), a few at a time; the bar counts them as they finish. ------------
  var BULK_PARALLEL = 3;
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }
  function runBulk(run) {
    var url = run.getAttribute("data-url");
    var label = run.getAttribute("data-label");
    var total = parseInt(run.getAttribute("data-total"), 10) || 0;
    var queue = Array.prototype.slice.call(run.querySelectorAll(".bulk-step[data-token]"));
    var bar = run.querySelector("[data-bulk-bar]");
    var ok = 0;
    var failed = run.querySelectorAll(".bulk-step.failed").length;
    var active = 0;

    function show() {
      var finished = ok + failed;
      run.querySelector("[data-bulk-done]").textContent = String(ok);
      var count = run.querySelector("[data-bulk-failed-count]");
      count.hidden = failed === 0;
      count.textContent = failed ? " · " + failed + " failed" : "";
      bar.value = finished;
      bar.textContent = finished + " of " + total;
      bar.setAttribute("aria-valuetext", ok + " of " + total + " done" + (failed ? ", " + failed + " failed" : ""));
    }
    function settle(step, result) {
      step.classList.remove("running");
      step.classList.add(result.ok ? "ok" : "failed");
      if (!result.ok) step.setAttribute("data-error", result.error || "Failed.");
      step.querySelector(".bulk-step-state").textContent = result.ok ? "done" : "failed: " + (result.error || "Failed.");
      if (result.ok) ok += 1; else failed += 1;
      show();
    }
    function finish() {
      var status = run.querySelector("[data-bulk-status]");
      status.textContent = label + ": " + ok + " of " + total + " done" + (failed ? ", " + failed + " failed." : ".") +
        (ok ? " Their rows update as Daytona finishes." : "");
      var failures = Array.prototype.slice.call(run.querySelectorAll(".bulk-step.failed"));
      if (failures.length) {
        var box = run.querySelector("[data-bulk-failures]");
        box.querySelector("[data-bulk-failures-title]").textContent = failures.length + " failed:";
        var list = box.querySelector("ul");
        failures.forEach(function (step) {
          var li = document.createElement("li");
          li.textContent = step.getAttribute("data-name") + ": " + step.getAttribute("data-error");
          list.appendChild(li);
        });
        box.hidden = false;
      }
      run.setAttribute("data-bulk-finished", "");
      if (sandbar.toast) sandbar.toast(label + ": " + ok + " of " + total + " done.", failed ? "error" : "success");
      announce(status.textContent);
    }
    function next() {
      if (!queue.length) { if (active === 0) finish(); return; }
      var step = queue.shift();
      active += 1;
      step.classList.add("running");
      step.querySelector(".bulk-step-state").textContent = "working";
      var body = new URLSearchParams();
      body.set("token", step.getAttribute("data-token"));
      fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" },
      }).then(function (response) {
        return response.json().catch(function () { return { ok: false, error: "The dashboard answered " + response.status + "." }; });
      }).catch(function () {
        return { ok: false, error: "No answer from the dashboard." };
      }).then(function (result) {
        settle(step, result);
        active -= 1;
        next();
      });
    }
    show();
    if (!queue.length) { finish(); return; }
    for (var i = 0; i < BULK_PARALLEL; i += 1) next();
  }

  function refreshList() {
    var results = document.getElementById("results");
    if (!results || !window.htmx) return;
    window.htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#results", swap: "outerHTML", indicator: "#results" });
  }

  // --- Live state over a WebSocket (one shared poll on the server fans out to everyone). --
  var LIVE_PATH = "/ws/sandboxes/";
  var socket = null;
  var retry = 1000;

  function setLive(on) {
    var badge = document.getElementById("live-status");
    if (!badge) return;
    badge.hidden = false;
    badge.classList.toggle("on", on);
    badge.querySelector(".live-text").textContent = on ? "Live" : "Reconnecting…";
    badge.title = on ? "State changes appear here as they happen" : "Live updates paused; reconnecting";
  }

  function fromHtml(html, tag) {
    var template = document.createElement("template");
    template.innerHTML = tag === "tr" ? "<table><tbody>" + html + "</tbody></table>" : html;
    return tag === "tr" ? template.content.querySelector("tr") : template.content.firstElementChild;
  }

  function applyChange(message) {
    setLive(true);
    var row = document.getElementById("sb-" + message.id);
    var changed = false;
    if (row && message.row) {
      var fresh = fromHtml(message.row, "tr");
      var old = row.querySelector('input[name="ids"]');
      var neu = fresh && fresh.querySelector('input[name="ids"]');
      if (old && neu) neu.checked = old.checked;
      if (fresh && row.getAttribute("data-state") !== fresh.getAttribute("data-state")) changed = true;
      if (fresh) { row.replaceWith(fresh); if (window.htmx) window.htmx.process(fresh); }
    }
    var head = document.getElementById("sandbox-head");
    if (head && head.getAttribute("data-sandbox-id") === message.id && message.head) {
      var newHead = fromHtml(message.head);
      if (newHead && head.getAttribute("data-state") !== newHead.getAttribute("data-state")) changed = true;
      if (newHead) { head.replaceWith(newHead); if (window.htmx) window.htmx.process(newHead); }
    }
    if (changed) announce(message.name + " is now " + String(message.state).replace(/_/g, " "));
    updateBulkBar();
  }

  // New and vanished sandboxes are patched in place from the pushed row, so a creation
  // does not make every open list ask Daytona again.
  function newestFirstUnfiltered() {
    var params = new URLSearchParams(window.location.search);
    var plain = true;
    params.forEach(function (value, key) {
      if (value && ["limit", "sort", "order"].indexOf(key) < 0) plain = false;
    });
    return plain && (params.get("sort") || "lastActivityAt") !== "name" && params.get("order") !== "asc";
  }

  function noteNew() {
    var badge = document.getElementById("live-status");
    if (badge) badge.querySelector(".live-text").textContent = "Live · new sandboxes: refresh to see them";
  }

  function insertRow(message) {
    var results = document.getElementById("results");
    if (!results) return;
    if (document.getElementById("sb-" + message.id)) { applyChange(message); return; }
    var tbody = results.querySelector(".sandboxes-table tbody");
    var row = message.row && fromHtml(message.row, "tr");
    if (!tbody || !row) return;
    if (!newestFirstUnfiltered()) { noteNew(); return; }
    var empty = tbody.querySelector(".empty-row");
    if (empty) empty.remove();
    tbody.insertBefore(row, tbody.firstChild);
    if (window.htmx) window.htmx.process(row);
    announce(message.name + " was created");
    updateBulkBar();
  }

  function dropRow(message) {
    var row = document.getElementById("sb-" + message.id);
    if (row) {
      var box = row.querySelector('input[name="ids"]');
      if (box) { box.checked = false; box.disabled = true; }
      row.classList.add("dimmed");
      announce((message.name || "A sandbox") + " was deleted");
      window.setTimeout(function () { row.remove(); updateBulkBar(); }, 1500);
    }
    var head = document.getElementById("sandbox-head");
    if (head && head.getAttribute("data-sandbox-id") === message.id && sandbar.toast) {
      sandbar.toast((message.name || "This sandbox") + " was deleted.", "warning");
    }
  }

  function connect() {
    if (!document.getElementById("live-status") || !window.WebSocket) return;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + LIVE_PATH);
    socket.addEventListener("open", function () { retry = 1000; setLive(true); });
    socket.addEventListener("message", function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "sandbox.changed") applyChange(message);
      else if (message.type === "sandbox.unavailable") {
        var badge = document.getElementById("live-status");
        if (badge) {
          badge.classList.remove("on");
          badge.querySelector(".live-text").textContent = "Daytona not answering";
          badge.title = message.message || "";
        }
      } else if (message.type === "sandbox.created") insertRow(message);
      else if (message.type === "sandbox.removed") dropRow(message);
    });
    socket.addEventListener("close", function (event) {
      setLive(false);
      if (event.code === 4403 || event.code === 4401) return; // not allowed: do not hammer
      window.setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    connect();
    updateBulkBar();
  });
})();
