// Small behaviours shared by every page. No inline scripts anywhere: the CSP forbids them.
(function () {
  "use strict";

  function announce(text) {
    var region = document.getElementById("announcer");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }
  // reconnect.js may have put its helper here first.
  window.sandbar = window.sandbar || {};
  window.sandbar.announce = announce;

  function toast(text, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "info");
    el.setAttribute("role", "status");
    el.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.setAttribute("data-dismiss", "");
    close.textContent = "×";
    el.appendChild(close);
    box.appendChild(el);
    window.setTimeout(function () { el.remove(); }, kind === "error" ? 12000 : 5000);
  }
  window.sandbar.toast = toast;

  // --- Destructive actions confirm in a dialog (#confirm-dialog) that names what goes. ----
  // sandbar.confirm(detail, text, action) opens it for an htmx:confirm whose default the
  // caller has prevented; Confirm issues the request, Cancel drops it.
  var pendingConfirm = null;
  function openConfirm(detail, text, action) {
    var dialog = document.getElementById("confirm-dialog");
    dialog.querySelector("[data-confirm-text]").textContent = text;
    dialog.querySelector("[data-confirm-ok]").textContent = action;
    pendingConfirm = detail;
    dialog.showModal();
    dialog.querySelector("[data-confirm-cancel]").focus();
  }
  window.sandbar.confirm = openConfirm;

  document.addEventListener("htmx:confirm", function (event) {
    var el = event.detail.elt;
    if (!el || !el.hasAttribute || !el.hasAttribute("data-confirm")) return;
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog || !dialog.showModal) return; // no dialog: the server still checks everything
    event.preventDefault();
    openConfirm(event.detail, el.getAttribute("data-confirm"), el.getAttribute("data-confirm-action") || "Confirm");
  });

  document.addEventListener("click", function (event) {
    var ok = event.target.closest("[data-confirm-ok]");
    if (!ok && !event.target.closest("[data-confirm-cancel]")) return;
    document.getElementById("confirm-dialog").close();
    if (ok && pendingConfirm) pendingConfirm.issueRequest(true);
    pendingConfirm = null;
  });

  function currentTheme() {
    var set = document.documentElement.dataset.theme;
    if (set) return set;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function closeNav() {
    document.body.classList.remove("nav-open");
    var toggle = document.querySelector("[data-toggle-nav]");
    if (toggle) toggle.setAttribute("aria-expanded", "false");
  }
  // The header's menus (<details>, e.g. the connection switcher) close as menus do: on
  // Escape, giving focus back to their button, and on a click anywhere else.
  function closeMenus(except, refocus) {
    document.querySelectorAll(".topbar details[open]").forEach(function (menu) {
      if (menu === except) return;
      var hadFocus = menu.contains(document.activeElement);
      menu.open = false;
      if (refocus && hadFocus) menu.querySelector("summary").focus();
    });
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    if (document.body.classList.contains("nav-open")) closeNav();
    closeMenus(null, true);
  });

  document.addEventListener("click", function (event) {
    if (document.body.classList.contains("nav-open") && !event.target.closest("#sidebar,[data-toggle-nav]")) {
      closeNav();
    }
    closeMenus(event.target.closest(".topbar details"), false);
    var target = event.target.closest("[data-theme-toggle],[data-toggle-nav],[data-dismiss],[data-copy]");
    if (!target) return;
    if (target.hasAttribute("data-theme-toggle")) {
      var next = currentTheme() === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      try { localStorage.setItem("sandbar-theme", next); } catch (e) { /* ignore */ }
      announce("Theme: " + next);
    } else if (target.hasAttribute("data-toggle-nav")) {
      var open = document.body.classList.toggle("nav-open");
      target.setAttribute("aria-expanded", open ? "true" : "false");
    } else if (target.hasAttribute("data-dismiss")) {
      var toastEl = target.closest(".toast");
      if (toastEl) toastEl.remove();
    } else if (target.hasAttribute("data-copy")) {
      var spec = target.getAttribute("data-copy");
      var text = spec.charAt(0) === "#" ? (document.querySelector(spec) || {}).value : spec;
      if (!text) return;
      navigator.clipboard.writeText(text).then(function () {
        var old = target.getAttribute("aria-label") || "";
        target.classList.add("copied");
        announce("Copied");
        window.setTimeout(function () { target.classList.remove("copied"); if (old) target.setAttribute("aria-label", old); }, 1200);
      }, function () { toast("Copy failed: your browser blocked the clipboard.", "error"); });
    }
  });

  // Each table cell learns its column's name, which a phone shows when rows become cards.
  function labelCells(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("table.table").forEach(function (table) {
      var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) { return th.textContent.trim(); });
      table.querySelectorAll("tbody tr").forEach(function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.children, function (cell) {
          if (heads[column] && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", heads[column]);
          column += cell.colSpan || 1;
        });
      });
    });
  }
  labelCells(document);
  document.addEventListener("htmx:afterSettle", function () { labelCells(document); });
  document.addEventListener("htmx:oobAfterSwap", function () { labelCells(document); });

  // A select marked data-autosubmit submits its form when changed (hx-post if present).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select[data-autosubmit]")) {
      var form = el.form;
      if (form.hasAttribute("hx-post") && window.htmx) window.htmx.trigger(form, "submit");
      else form.requestSubmit();
    }
  });

  // Times marked data-relative say how long ago (or how soon) in words, and keep saying
  // it truly: the server's "now" becomes "2 minutes ago" without a reload.
  var TIME_UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(document.documentElement.lang || "en", { numeric: "auto" }) : null;
  function inWords(seconds) {
    for (var i = 0; i < TIME_UNITS.length; i += 1) {
      var size = TIME_UNITS[i][1];
      if (Math.abs(seconds) >= size) return relative.format(Math.trunc(seconds / size), TIME_UNITS[i][0]);
    }
    return relative.format(0, "second");  // under a minute: "now" (the clock ticks per minute)
  }
  function idleWords(seconds) {
    return seconds < 60 ? "active now" : Math.floor(seconds / 60) + " min";
  }
  function tickTimes() {
    if (!relative) return;
    var now = Date.now();
    document.querySelectorAll("time[data-relative][datetime]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      // "idle": how long since, as the open shells say it (terminal/_shells.html).
      var words = el.getAttribute("data-relative") === "idle" ? idleWords((now - at) / 1000) : inWords((at - now) / 1000);
      if (el.textContent !== words) el.textContent = words;
    });
    // Absolute times (the audit trail) keep their relative form on hover, as true.
    document.querySelectorAll("time[data-relative-title][datetime]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) el.title = inWords((at - now) / 1000);
    });
  }
  window.setInterval(tickTimes, 30000);
  document.addEventListener("DOMContentLoaded", tickTimes);
  document.addEventListener("htmx:afterSettle", tickTimes);
  window.sandbar.tickTimes = tickTimes;

  // Toasts rendered by the server (Django messages) fade out by themselves.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(function (el) {
      window.setTimeout(function () { el.remove(); }, el.classList.contains("toast-error") ? 12000 : 6000);
    });
  });

  // Lists with ticks (#results rows, data-verbs on each) and a bulk bar (#bulk-bar): the
  // bar counts the chosen rows and enables each action only if some of them can take it.
  function boxes() { return Array.prototype.slice.call(document.querySelectorAll('#results input[name="ids"]')); }
  function chosen() { return boxes().filter(function (b) { return b.checked; }); }
  function able(verb) {
    return chosen().filter(function (b) { return (" " + b.getAttribute("data-verbs") + " ").indexOf(" " + verb + " ") >= 0; });
  }
  function updateBulkBar() {
    var bar = document.getElementById("bulk-bar");
    if (!bar) return;
    var picked = chosen();
    bar.hidden = picked.length === 0;
    bar.querySelector("[data-bulk-count]").textContent = String(picked.length);
    bar.querySelectorAll("[data-bulk]").forEach(function (button) {
      var count = able(button.getAttribute("data-bulk")).length;
      button.disabled = count === 0;
      button.title = count === 0 ? "None of the selected can do this now (state or permission)" : count + " of " + picked.length + " can";
    });
    var all = document.querySelector("[data-select-all]");
    if (all) {
      var total = boxes().length;
      all.checked = total > 0 && picked.length === total;
      all.indeterminate = picked.length > 0 && picked.length < total;
    }
  }
  function clearSelection() {
    boxes().forEach(function (b) { b.checked = false; });
    updateBulkBar();
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-select-all]")) {
      boxes().forEach(function (b) { b.checked = target.checked; });
      updateBulkBar();
    } else if (target.matches && target.matches('#results input[name="ids"]')) {
      updateBulkBar();
    }
  });
  document.addEventListener("htmx:afterSettle", updateBulkBar);
  document.addEventListener("DOMContentLoaded", updateBulkBar);
  window.sandbar.selection = { boxes: boxes, chosen: chosen, able: able, update: updateBulkBar, clear: clearSelection };

  // HTMX: a server event "sandbar:toast" shows a toast; failures never pass silently.
  document.addEventListener("sandbar:toast", function (event) {
    var detail = event.detail || {};
    toast(detail.message || detail.value || "", detail.level || "info");
  });
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr) return;
    if (xhr.status === 403) toast("Not allowed: your role does not permit this.", "error");
    else if (xhr.status === 404) toast("Not found: it may have been deleted.", "error");
    else if (xhr.status >= 500) toast("The server failed (" + xhr.status + "). Try again in a moment.", "error");
  });
  // An element marked data-once sends a token of its own with each request, the same
  // token however often it fires: the server runs one request per token, so a double
  // click (or a retried request) acts once. (getRandomValues: plain-HTTP pages too.)
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-once")) return;
    if (!elt.dataset.once) {
      var bytes = window.crypto.getRandomValues(new Uint8Array(16));
      elt.dataset.once = Array.prototype.map.call(bytes, function (b) {
        return (b < 16 ? "0" : "") + b.toString(16);
      }).join("");
    }
    event.detail.parameters.once = elt.dataset.once;
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Sandbar cannot be reached. Check your connection.", "error");
  });
})();
