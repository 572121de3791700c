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
    if (target && target.id === "results") { keepSelection(); updateBulkBar(); }
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
  // The badge tells what is true now: live, reconnecting or offline (with the reason), or
  // Daytona not answering while the dashboard itself is reachable.
  var LIVE_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    idle: "Offline",
    daytona: "Daytona not answering"
  };
  var live = null;
  var shownStatus = "";

  function showLive(status, reason) {
    var badge = document.getElementById("live-status");
    if (!badge) return;
    var was = shownStatus;
    shownStatus = status;
    badge.hidden = false;
    badge.dataset.status = status;
    badge.classList.toggle("on", status === "live");
    var label = LIVE_TEXT[status];
    badge.querySelector(".live-text").textContent = reason && status !== "live" ? label.replace(/…$/, "") + ": " + reason : label;
    badge.title = status === "live" ? "State changes appear here as they happen" :
      "Live updates paused" + (reason ? " (" + reason + ")" : "") + (status === "offline" ? ". Reload the page to try again." : "");
    if (was === "live" && status !== "live") announce("Live updates paused: " + (reason || LIVE_TEXT[status]));
    else if (was && was !== "live" && was !== "connecting" && status === "live") announce("Live updates are back");
  }

  function fromHtml(html, tag) {
    var template = document.createElement("template");
    template.innerHTML = tag === "tr" ? "<table><tbody>" + html + "</tbody></table>" : html;
    return tag === "tr" ? template.content.querySelector("tr") : template.content.firstElementChild;
  }

  function applyChange(message) {
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
    if (sandbar.tickTimes) sandbar.tickTimes();
    detailChanged();
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
    if (sandbar.tickTimes) sandbar.tickTimes();
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

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (message.type === "sandbox.changed") applyChange(message);
    else if (message.type === "sandbox.created") insertRow(message);
    else if (message.type === "sandbox.removed") dropRow(message);
    else if (message.type === "sandbox.unavailable") showLive("daytona", message.message || "");
    else if (message.type === "sandbox.available") { showLive("live"); catchUp(); }
  }

  // What the page shows may be stale after a gap (a lost socket, Daytona away): fetch it
  // again rather than trust that every change in between was pushed.
  var chosenBefore = null;
  function catchUp() {
    chosenBefore = boxes().filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
    refreshList();
    document.dispatchEvent(new CustomEvent("sandbar:live-resumed"));
  }

  // --- The sandbox page: its header and its tab follow the sandbox's state. -------------
  // The tab's body (#sandbox-tab) was drawn for one state ("The sandbox is stopped", or a
  // terminal); when the state moves on, or after a gap, the page is fetched again and
  // what changed is swapped in. A tab in the same state is left alone: a live terminal or
  // log keeps its own connection, and a half-typed settings form keeps its text.
  var detailFetch = null;
  var pageTab = document.getElementById("sandbox-tab");
  var pageNonce = pageTab ? pageTab.getAttribute("data-style-nonce") || "" : "";

  function swapIn(id, fresh) {
    var old = document.getElementById(id);
    if (!old || !fresh) return null;
    window.htmx.swap(old, fresh.outerHTML, { swapStyle: "outerHTML" });
    return document.getElementById(id);
  }

  // htmx drops the scripts that come with swapped markup (allowScriptTags is off): the
  // tab's own scripts (our static files; the CSP allows nothing else) are loaded again,
  // in their order, once the markup they look for is in.
  function runScripts(sources) {
    sources.forEach(function (src) {
      var script = document.createElement("script");
      script.src = src;
      script.async = false;
      script.setAttribute("data-tab-script", "");
      document.head.appendChild(script);
    });
  }

  function refreshDetail() {
    var head = document.getElementById("sandbox-head");
    if (!head || !window.htmx) return;
    if (detailFetch) { detailFetch.again = true; return; }
    detailFetch = { again: false };
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .catch(function () { return ""; })
      .then(function (html) {
        var again = detailFetch.again;
        detailFetch = null;
        if (html) applyDetail(new DOMParser().parseFromString(html, "text/html"));
        if (again) refreshDetail();
      });
  }

  function applyDetail(doc) {
    var head = doc.getElementById("sandbox-head");
    if (!head) return;  // gone, or signed out: the live socket says so on its own
    swapIn("sandbox-head", head);
    var tab = document.getElementById("sandbox-tab");
    var fresh = doc.getElementById("sandbox-tab");
    if (!tab || !fresh) return;
    if (tab.getAttribute("data-tab") === "overview") {
      swapIn("facts", doc.getElementById("facts"));
      tab.setAttribute("data-state", fresh.getAttribute("data-state"));
      return;
    }
    if (tab.getAttribute("data-state") === fresh.getAttribute("data-state")) return;
    // A nonce holds for the response that brought it: the tab's scripts must use this
    // page's (kept from its first load), not the fetched copy's.
    fresh.querySelectorAll("[data-style-nonce]").forEach(function (el) { el.setAttribute("data-style-nonce", pageNonce); });
    var sources = Array.prototype.map.call(fresh.querySelectorAll("script[src]"), function (el) { return el.src; });
    if (swapIn("sandbox-tab", fresh)) runScripts(sources);
  }

  // A pushed header in another state than the tab was drawn for: draw the tab again.
  function detailChanged() {
    var head = document.getElementById("sandbox-head");
    var tab = document.getElementById("sandbox-tab");
    if (head && tab && head.getAttribute("data-state") !== tab.getAttribute("data-state")) refreshDetail();
  }
  document.addEventListener("sandbar:live-resumed", refreshDetail);

  // Rows fetched again after a gap keep the ticks the reader had put on them.
  function keepSelection() {
    if (!chosenBefore) return;
    boxes().forEach(function (b) { if (chosenBefore.indexOf(b.value) >= 0 && !b.disabled) b.checked = true; });
    chosenBefore = null;
  }

  function connect() {
    if (!document.getElementById("live-status") || !sandbar.reconnect) return;
    live = sandbar.reconnect({
      url: "/ws/sandboxes/",
      delays: { first: 1000, max: 15000 },
      onStatus: function (status, detail) { showLive(status, status === "live" ? "" : detail.reason); },
      onOpen: function (socket, info) { if (info.reconnected) catchUp(); },
      onMessage: onMessage
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    connect();
    updateBulkBar();
  });
})();
