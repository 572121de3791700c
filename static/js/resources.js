// Snapshots, volumes and limits: confirmations, refresh, and the build log viewer.
// No inline scripts anywhere (the CSP forbids them): everything hangs off data-* attributes.
(function () {
  "use strict";

  // --- Destructive actions confirm in a dialog that names what goes. ----------------------
  var pending = null;
  document.addEventListener("htmx:confirm", function (event) {
    var el = event.detail.elt;
    if (!el || !el.hasAttribute || !el.hasAttribute("data-confirm")) return;
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog || !dialog.showModal) return; // no dialog: the server still checks everything
    event.preventDefault();
    dialog.querySelector("[data-confirm-text]").textContent = el.getAttribute("data-confirm");
    dialog.querySelector("[data-confirm-ok]").textContent = el.getAttribute("data-confirm-action") || "Confirm";
    pending = event.detail;
    dialog.showModal();
    dialog.querySelector("[data-confirm-cancel]").focus();
  });

  document.addEventListener("click", function (event) {
    var ok = event.target.closest("[data-confirm-ok]");
    var cancel = event.target.closest("[data-confirm-cancel]");
    if (ok || cancel) {
      document.getElementById("confirm-dialog").close();
      if (ok && pending) pending.issueRequest(true);
      pending = null;
      return;
    }
    var refresh = event.target.closest("[data-refresh]");
    var target = refresh && document.querySelector(refresh.getAttribute("data-refresh"));
    if (target && window.htmx) {
      event.preventDefault();
      window.htmx.ajax("GET", window.location.pathname + window.location.search, { target: target, swap: "outerHTML", indicator: target });
    }
  });

  // --- The build log: stay at the end while following, unless the reader scrolled up. ----
  function stickToEnd() {
    var log = document.getElementById("build-log");
    var stick = document.querySelector("[data-log-stick]");
    if (log && (!stick || stick.checked)) log.scrollTop = log.scrollHeight;
  }
  document.addEventListener("htmx:oobAfterSwap", stickToEnd);
  document.addEventListener("DOMContentLoaded", stickToEnd);

  // A state that changes under a reader is said aloud, not only shown.
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var head = event.detail.target;
    if (head && head.id === "snapshot-head" && window.sandbar && window.sandbar.announce) {
      var badge = head.querySelector(".badge");
      if (badge) window.sandbar.announce("State: " + badge.textContent.trim());
    }
  });
})();
