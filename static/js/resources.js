// Snapshots, volumes and limits: confirmations, refresh and bulk actions.
// No inline scripts anywhere (the CSP forbids them): everything hangs off data-* attributes.
(function () {
  "use strict";

  // Destructive actions confirm in a dialog that names what goes (static/js/app.js).

  document.addEventListener("click", function (event) {
    var refresh = event.target.closest("[data-refresh]");
    var target = refresh && document.querySelector(refresh.getAttribute("data-refresh"));
    if (target && window.htmx) {
      event.preventDefault();
      boxes().forEach(function (b) { b.checked = false; });
      window.htmx.ajax("GET", window.location.pathname + window.location.search, { target: target, swap: "outerHTML", indicator: target });
    }
  });

  // --- Selection and the bulk bar (static/js/app.js). ------------------------------------
  var selection = window.sandbar.selection;
  var boxes = selection.boxes, chosen = selection.chosen, able = selection.able;
  // A timed reload would clear the rows someone is choosing: skip it while any is ticked.
  // (A reload after a change, "*-changed", still goes through; Refresh clears the ticks first.)
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || elt.id !== "results" || !chosen().length) return;
    var cause = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    if (!cause || !/-changed$/.test(cause.type)) event.preventDefault();
  });

  // The bulk form confirms with the names of what the chosen action touches. Only boxes
  // for which the action applies are sent; the server checks each one again anyway.
  var bulkVerb = null;
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-bulk]");
    if (button) bulkVerb = { verb: button.getAttribute("data-bulk"), label: button.getAttribute("data-label") };
    if (event.target.closest("[data-bulk-clear]")) selection.clear();
    var dismiss = event.target.closest("[data-dismiss-report]");
    if (dismiss) dismiss.closest(".bulk-report").replaceChildren();
  });
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "bulk-form" || !bulkVerb) return;
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog || !dialog.showModal) return;
    event.preventDefault();
    var targets = able(bulkVerb.verb);
    boxes().forEach(function (b) { b.disabled = targets.indexOf(b) < 0; }); // not sent
    var noun = form.getAttribute("data-bulk-noun") || "item";
    var names = targets.map(function (b) { return b.getAttribute("data-name"); });
    var what = targets.length + " " + noun + (targets.length === 1 ? "" : "s");
    var text = bulkVerb.label + " " + what + ": " + names.join(", ") + "?";
    if (bulkVerb.verb === "delete") text += " This cannot be undone.";
    dialog.addEventListener("close", function () {
      boxes().forEach(function (b) { b.disabled = false; });
    }, { once: true });
    window.sandbar.confirm(event.detail, text, bulkVerb.label + " " + what);
  });

  // --- The build log is the Logs tab's viewer (static/js/logs.js), sticky follow included. --

  // A state that changes under a reader is said aloud, not only shown.
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var head = event.detail.target;
    if (head && head.id === "snapshot-head" && window.sandbar && window.sandbar.announce) {
      var badge = head.querySelector(".badge");
      if (badge) window.sandbar.announce("State: " + badge.textContent.trim());
    }
  });
})();
