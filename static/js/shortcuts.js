// Keyboard shortcuts on every page: "/" search, "g s" sandboxes, "g n" new sandbox,
// "?" this list. Keys typed into a field, a select, an editable area or a terminal
// (xterm listens on a textarea) are left alone, as are keys with Ctrl, Alt or Meta.
// The addresses come from this script's data-* attributes (templates/_base.html).
(function () {
  "use strict";

  var script = document.currentScript;
  var urls = {
    s: script && script.getAttribute("data-sandboxes"),
    n: script && script.getAttribute("data-new-sandbox"),
  };
  var styles = script && script.getAttribute("data-styles");
  // "g n" only for people who may create sandboxes (the page leaves its address out).
  var SHORTCUTS = [
    ["/", "Search this page (or find a sandbox)"],
    ["g then s", "Go to sandboxes"],
    ["g then n", "New sandbox"],
    ["?", "Show these shortcuts"],
    ["Esc", "Close this list"],
  ].filter(function (item) { return item[0] !== "g then n" || urls.n; });
  var PREFIX_MS = 1500;
  var pendingG = 0;

  function typingInto(target) {
    if (!target || !target.closest) return false;
    return Boolean(target.closest("input, textarea, select, [contenteditable=''], [contenteditable=true], .xterm"));
  }

  // The page's own search first (the list's filters), else the one in the top bar.
  var SEARCHES = ["main [data-search]", "main .field-search input", "main input[type=search]", "#global-search"];
  function pageSearch() {
    for (var i = 0; i < SEARCHES.length; i += 1) {
      var found = document.querySelector(SEARCHES[i]);
      if (found && !found.disabled) return found;
    }
    return null;
  }

  function helpDialog() {
    var dialog = document.getElementById("shortcuts-dialog");
    if (dialog) return dialog;
    if (styles && !document.querySelector('link[href="' + styles + '"]')) {
      var link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = styles;
      document.head.appendChild(link);
    }
    dialog = document.createElement("dialog");
    dialog.id = "shortcuts-dialog";
    dialog.className = "shortcuts-dialog";
    dialog.setAttribute("aria-labelledby", "shortcuts-title");
    var title = document.createElement("h2");
    title.id = "shortcuts-title";
    title.textContent = "Keyboard shortcuts";
    var list = document.createElement("dl");
    SHORTCUTS.forEach(function (item) {
      var keys = document.createElement("dt");
      item[0].split(" then ").forEach(function (key, index) {
        if (index) keys.appendChild(document.createTextNode(" then "));
        var kbd = document.createElement("kbd");
        kbd.textContent = key;
        keys.appendChild(kbd);
      });
      var what = document.createElement("dd");
      what.textContent = item[1];
      list.appendChild(keys);
      list.appendChild(what);
    });
    var note = document.createElement("p");
    note.className = "muted small";
    note.textContent = "They do nothing while you type in a field or a terminal.";
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn";
    close.textContent = "Close";
    close.addEventListener("click", function () { dialog.close(); });
    var actions = document.createElement("div");
    actions.className = "shortcuts-actions";
    actions.appendChild(close);
    dialog.append(title, list, note, actions);
    // A click on the backdrop (outside the box) closes it too.
    dialog.addEventListener("click", function (event) { if (event.target === dialog) dialog.close(); });
    document.body.appendChild(dialog);
    return dialog;
  }

  function go(url) { if (url) window.location.assign(url); }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typingInto(event.target) || document.querySelector("dialog[open]:not(#shortcuts-dialog)")) return;
    var key = event.key;
    if (pendingG && Date.now() - pendingG < PREFIX_MS && (key === "s" || key === "n")) {
      pendingG = 0;
      event.preventDefault();
      go(urls[key]);
      return;
    }
    pendingG = 0;
    if (key === "g") {
      pendingG = Date.now();
    } else if (key === "/") {
      var search = pageSearch();
      if (!search) return;
      event.preventDefault();
      search.focus();
      if (search.select) search.select();
    } else if (key === "?") {
      event.preventDefault();
      var dialog = helpDialog();
      if (!dialog.open) dialog.showModal();
    }
  });
})();
