/* The audit trail: an entry's detail opens in place; auto-refresh puts new entries on
   top without touching the rows already there, so scroll and open details stay. */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest(".audit-toggle");
    if (!button) return;
    var detail = document.getElementById(button.getAttribute("aria-controls"));
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    detail.hidden = !open;
    if (open && detail.hasAttribute("data-detail")) load(detail);
  });

  function load(detail) {
    var url = detail.getAttribute("data-detail");
    detail.removeAttribute("data-detail");  // once: it stays while the row lives
    var cell = detail.querySelector("td");
    fetch(url, { headers: { "HX-Request": "true" } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.text();
      })
      .then(function (html) { cell.innerHTML = html; })
      .catch(function () {
        cell.textContent = "The entry could not be loaded; its own page: " + url;
        detail.setAttribute("data-detail", url);
      });
  }

  // The dates only matter for a custom range: shown then, cleared otherwise so a
  // quick range is not sent with stale dates (the server refuses both together).
  function syncRange(form) {
    var range = form.querySelector("[name=range]");
    var custom = range.value === "custom";
    form.classList.toggle("custom-range", custom);
    form.querySelectorAll(".audit-custom input").forEach(function (input) {
      input.disabled = !custom;
    });
  }
  document.addEventListener("change", function (event) {
    var form = event.target.closest("[data-audit-filters]");
    if (form && event.target.name === "range") syncRange(form);
  }, true);

  var timer = null;
  function poll(results) {
    var base = results.getAttribute("data-audit-live");
    var newest = results.getAttribute("data-audit-newest");
    fetch(base + encodeURIComponent(newest), { headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) return null;
        var more = response.headers.get("X-Audit-More") === "1";
        var top = response.headers.get("X-Audit-Newest");
        return response.text().then(function (html) { return { html: html, more: more, top: top }; });
      })
      .then(function (reply) {
        if (!reply || !document.body.contains(results)) return;
        var table = results.querySelector(".audit-table");
        var head = table.querySelector("thead");
        if (reply.html.trim()) {
          var empty = table.querySelector("td.empty");
          if (empty) empty.closest("tbody").remove();
          // Rows put above what the reader looks at push it down: scroll by as much
          // (the table's own box on wide screens, the page on phones), unless they were
          // at the top, where new entries are what they watch for.
          var wrap = results.querySelector(".table-wrap");
          var before = wrap.scrollHeight, pageBefore = document.documentElement.scrollHeight;
          var top = wrap.scrollTop, pageTop = window.scrollY;
          head.insertAdjacentHTML("afterend", reply.html);
          if (top > 0) wrap.scrollTop = top + wrap.scrollHeight - before;
          if (pageTop > 0 && wrap.scrollHeight === wrap.clientHeight) {
            window.scrollTo(0, pageTop + document.documentElement.scrollHeight - pageBefore);
          }
        }
        results.setAttribute("data-audit-newest", reply.top);
        if (reply.more) {
          var live = results.querySelector(".audit-live");
          if (live) live.textContent = "More new entries than one page: reload to see them all.";
        }
      })
      .catch(function () { /* the next tick tries again */ });
  }

  function start() {
    if (timer) { clearInterval(timer); timer = null; }
    var form = document.querySelector("[data-audit-filters]");
    if (form) {
      var range = form.querySelector("[name=range]");
      var dated = Array.prototype.some.call(
        form.querySelectorAll(".audit-custom input"), function (i) { return i.value; });
      if (range.value === "" && dated) range.value = "custom";  // a link with dates only
      syncRange(form);
    }
    var results = document.querySelector("[data-audit-live]");
    if (!results) return;
    var every = parseInt(results.getAttribute("data-audit-every"), 10);
    if (every > 0) timer = setInterval(function () { poll(results); }, every * 1000);
  }
  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:afterSettle", start);
})();
