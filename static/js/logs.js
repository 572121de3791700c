// The log viewer: run a command or pick an earlier one, follow its output live.
// Lines arrive in numbered batches over one WebSocket (dashboard/terminal/logs.py);
// each batch is acknowledged once drawn, so a flood slows the server, not the page.
// The page keeps at most MAX_LINES lines; the full log is a download.
// A snapshot's build log uses the same viewer, fed by polling its log endpoint
// (data-logs-poll) for batches of the same shape, with no command to run.
(function () {
  "use strict";

  // The sandbox page draws its tab again when the sandbox's state changes, and loads this
  // script again with it (sandboxes.js): each run serves the viewer now in the page, once,
  // and stops the one whose markup went away.
  var root = document.querySelector("[data-logs]");
  if (!root || root.sandbarLogs) return;
  if (window.sandbar.logs) window.sandbar.logs.stop();

  var MAX_LINES = 5000;
  var BACKOFF = [1, 2, 4, 8, 15];

  var sandboxId = root.dataset.sandbox;
  var pollUrl = root.dataset.logsPoll || "";
  var view = root.querySelector("[data-logs-view]");
  var title = root.querySelector("[data-logs-title]");
  var stateEl = root.querySelector("[data-logs-state]");
  var form = root.querySelector("[data-logs-run]");
  var input = form ? form.querySelector("input[name=command]") : null;
  var search = root.querySelector("[data-logs-search]");
  var matches = root.querySelector("[data-logs-matches]");
  var stderrOnly = root.querySelector("[data-logs-stderr-only]");
  var download = root.querySelector("[data-logs-download]");
  var banner = root.querySelector("[data-logs-banner]");
  var bannerText = root.querySelector("[data-logs-banner-text]");
  var newButton = root.querySelector("[data-logs-new]");
  var newText = root.querySelector("[data-logs-new-text]");
  var stopButton = root.querySelector("[data-logs-stop]") || document.createElement("button");

  var attempt = 0;      // failed polls of a build log in a row
  var stopped = false;  // this viewer's markup is gone: nothing more to fetch
  var current = null;   // {session, command, text, count, ended}
  var shown = 0;        // lines in the page
  var dropped = 0;      // lines removed from the top to keep the page light
  var unseen = 0;

  function setState(text, kind) {
    stateEl.textContent = text;
    stateEl.dataset.state = kind || "";
  }

  // -- ANSI colours -----------------------------------------------------------
  var ESC = /\u001b\[([0-9;]*)m/g;
  var OTHER_ESC = /\u001b\[[0-9;?]*[A-Za-ln-z]|\u001b\][^\u0007]*\u0007|\r/g;

  function appendAnsi(parent, text) {
    text = text.replace(OTHER_ESC, "");
    var style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, fgRgb: null, bgRgb: null };
    var last = 0;
    var match;
    ESC.lastIndex = 0;
    function emit(chunk) {
      if (!chunk) return;
      if (style.fg === null && style.bg === null && !style.bold && !style.dim && !style.italic &&
          !style.underline && !style.fgRgb && !style.bgRgb) {
        parent.appendChild(document.createTextNode(chunk));
        return;
      }
      var span = document.createElement("span");
      var classes = [];
      if (style.fg !== null) classes.push("ansi-fg-" + style.fg);
      if (style.bg !== null) classes.push("ansi-bg-" + style.bg);
      if (style.bold) classes.push("ansi-bold");
      if (style.dim) classes.push("ansi-dim");
      if (style.italic) classes.push("ansi-italic");
      if (style.underline) classes.push("ansi-underline");
      span.className = classes.join(" ");
      // CSSOM, not a style attribute: allowed by the page's CSP.
      if (style.fgRgb) span.style.color = style.fgRgb;
      if (style.bgRgb) span.style.backgroundColor = style.bgRgb;
      span.textContent = chunk;
      parent.appendChild(span);
    }
    while ((match = ESC.exec(text)) !== null) {
      emit(text.slice(last, match.index));
      last = ESC.lastIndex;
      var codes = match[1] === "" ? [0] : match[1].split(";").map(Number);
      for (var i = 0; i < codes.length; i++) {
        var c = codes[i];
        if (c === 0) { style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, fgRgb: null, bgRgb: null }; }
        else if (c === 1) style.bold = true;
        else if (c === 2) style.dim = true;
        else if (c === 3) style.italic = true;
        else if (c === 4) style.underline = true;
        else if (c === 22) { style.bold = false; style.dim = false; }
        else if (c === 23) style.italic = false;
        else if (c === 24) style.underline = false;
        else if (c >= 30 && c <= 37) { style.fg = c - 30; style.fgRgb = null; }
        else if (c >= 90 && c <= 97) { style.fg = c - 90 + 8; style.fgRgb = null; }
        else if (c === 39) { style.fg = null; style.fgRgb = null; }
        else if (c >= 40 && c <= 47) { style.bg = c - 40; style.bgRgb = null; }
        else if (c >= 100 && c <= 107) { style.bg = c - 100 + 8; style.bgRgb = null; }
        else if (c === 49) { style.bg = null; style.bgRgb = null; }
        else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
          var n = codes[i + 2];
          if (n < 16) { if (c === 38) style.fg = n; else style.bg = n; }
          else { var rgb = xterm256(n); if (c === 38) style.fgRgb = rgb; else style.bgRgb = rgb; }
          i += 2;
        } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
          var value = "rgb(" + (codes[i + 2] | 0) + "," + (codes[i + 3] | 0) + "," + (codes[i + 4] | 0) + ")";
          if (c === 38) style.fgRgb = value; else style.bgRgb = value;
          i += 4;
        }
      }
    }
    emit(text.slice(last));
  }

  function xterm256(n) {
    if (n >= 232) { var g = 8 + (n - 232) * 10; return "rgb(" + g + "," + g + "," + g + ")"; }
    n -= 16;
    var steps = [0, 95, 135, 175, 215, 255];
    return "rgb(" + steps[Math.floor(n / 36) % 6] + "," + steps[Math.floor(n / 6) % 6] + "," + steps[n % 6] + ")";
  }

  // -- the view -----------------------------------------------------------------
  function atBottom() {
    return view.scrollTop + view.clientHeight >= view.scrollHeight - 8;
  }

  function clearView(text) {
    view.textContent = "";
    shown = 0;
    dropped = 0;
    unseen = 0;
    newButton.hidden = true;
    if (text) {
      var p = document.createElement("p");
      p.className = "muted logs-empty";
      p.textContent = text;
      view.appendChild(p);
    }
  }

  function trimmedNote() {
    var note = view.querySelector(".logs-trimmed");
    if (!note) {
      note = document.createElement("div");
      note.className = "logs-trimmed muted";
      view.insertBefore(note, view.firstChild);
    }
    note.textContent = dropped.toLocaleString() + " earlier lines are not kept in the page; the full log is in the download.";
  }

  var query = "";
  function matchesQuery(text) {
    return query && text.toLowerCase().indexOf(query) !== -1;
  }

  function appendLines(lines) {
    var stick = atBottom();
    var empty = view.querySelector(".logs-empty");
    if (empty) empty.remove();
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < lines.length; i++) {
      var row = document.createElement("div");
      row.className = lines[i][0] === 2 ? "log-line stderr" : "log-line";
      if (matchesQuery(lines[i][1])) row.classList.add("hit");
      appendAnsi(row, lines[i][1]);
      fragment.appendChild(row);
    }
    view.appendChild(fragment);
    shown += lines.length;
    var extra = shown - MAX_LINES;
    if (extra > 0) {
      var rows = view.querySelectorAll(".log-line");
      for (var j = 0; j < extra; j++) rows[j].remove();
      shown -= extra;
      dropped += extra;
      trimmedNote();
    }
    if (stick) {
      view.scrollTop = view.scrollHeight;
    } else {
      unseen += lines.length;
      newText.textContent = unseen.toLocaleString() + " new line" + (unseen === 1 ? "" : "s");
      newButton.hidden = false;
    }
    if (query) countMatches();
  }

  view.addEventListener("scroll", function () {
    if (atBottom()) { unseen = 0; newButton.hidden = true; }
  });
  newButton.addEventListener("click", function () {
    view.scrollTop = view.scrollHeight;
    unseen = 0;
    newButton.hidden = true;
  });

  function countMatches() {
    var hits = view.querySelectorAll(".log-line.hit").length;
    matches.textContent = query ? hits + " match" + (hits === 1 ? "" : "es") : "";
  }
  var searchTimer = null;
  search.addEventListener("input", function () {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(function () {
      var wasFiltering = !!query;
      query = search.value.trim().toLowerCase();
      view.classList.toggle("filtering", !!query);
      // Back from a search while following: return to the newest lines.
      if (wasFiltering && !query && current && !current.ended) view.scrollTop = view.scrollHeight;
      view.querySelectorAll(".log-line").forEach(function (row) {
        row.classList.toggle("hit", matchesQuery(row.textContent));
      });
      countMatches();
    }, 120);
  });
  stderrOnly.addEventListener("change", function () {
    view.classList.toggle("stderr-only", stderrOnly.checked);
  });

  // -- the socket (sandbar.reconnect: reconnect.js) ------------------------------------
  // Opened when there is something to follow; a command being followed is resumed after a
  // drop from the line the page has; with nothing to follow it stays closed.
  var pending = [];     // messages to send once the socket is open
  var live = pollUrl ? null : window.sandbar.reconnect({
    url: "/ws/sandboxes/" + encodeURIComponent(sandboxId) + "/logs/",
    noRetry: [4409],
    delays: { first: 1000, max: 15000 },
    maxAttempts: 5,
    lazy: true,
    onOpen: function (socket) {
      banner.hidden = true;
      // Resume where the page stopped: the server skips the lines we already have.
      if (current && !current.ended) {
        socket.send(JSON.stringify({ type: "follow", session: current.session, command: current.command, after: current.count }));
        setState("Following", "live");
      }
      var queued = pending;
      pending = [];
      queued.forEach(function (m) { socket.send(JSON.stringify(m)); });
    },
    onMessage: function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      handle(message);
    },
    onClose: function (event) {
      // Nothing to follow: no need for a socket until the next command.
      if (!current || current.ended) return false;
      return undefined;
    },
    onStatus: function (status, detail) {
      if (status === "reconnecting" && detail.retryAt) {
        setState("Reconnecting in " + Math.max(1, Math.round((detail.retryAt - Date.now()) / 1000)) + " s", "down");
      } else if (status === "offline") {
        setState(detail.code === 4409 ? "Not available" : "Disconnected", "down");
        bannerText.textContent = detail.code && detail.code >= 4000 ? detail.reason : "The log stream keeps failing.";
        banner.hidden = false;
      }
    }
  });

  function send(message) {
    if (!live.send(JSON.stringify(message))) {
      pending.push(message);
      live.start();
    }
  }

  function handle(message) {
    if (message.type === "started") {
      follow(message.session, message.command, message.text);
      document.body.dispatchEvent(new CustomEvent("logs-changed"));
    } else if (message.type === "lines") {
      if (!current || message.first !== current.count) {
        // Out of step (a follow that was replaced): ask again from where we are.
        live.send(JSON.stringify({ type: "ack" }));
        return;
      }
      appendLines(message.lines);
      current.count += message.lines.length;
      live.send(JSON.stringify({ type: "ack" }));
    } else if (message.type === "end") {
      if (current) current.ended = true;
      stopButton.hidden = true;
      if (message.stopped) {
        setState("Stopped", "failed");
        window.sandbar.announce("The command was stopped.");
      } else {
        var code = message.exit_code === null || message.exit_code === undefined ? "unknown" : message.exit_code;
        setState("Exited " + code, code === 0 ? "ok" : "failed");
        window.sandbar.announce("The command finished with exit code " + code + ".");
      }
      document.body.dispatchEvent(new CustomEvent("logs-changed"));
    } else if (message.type === "error") {
      if (message.retry && live.socket) { live.socket.close(); return; }
      window.sandbar.toast(message.message, "error");
      if (!current || current.ended || message.retry) return;
      if (stopButton.disabled) {
        // The stop was refused: the command runs on.
        stopButton.disabled = false;
        setState("Following", "live");
      } else {
        current.ended = true;
        stopButton.hidden = true;
        setState("Stopped", "down");
      }
    }
  }

  // The command followed is remembered for this tab: a reload follows it again.
  var memoryKey = "sandbar.logs." + sandboxId;
  function remember() {
    try {
      window.sessionStorage.setItem(memoryKey, JSON.stringify({ session: current.session, command: current.command, text: current.text }));
    } catch (e) { /* private mode */ }
  }
  function recalled() {
    try { return JSON.parse(window.sessionStorage.getItem(memoryKey) || "null"); } catch (e) { return null; }
  }

  function follow(session, command, text) {
    current = { session: session, command: command, text: text, count: 0, ended: false };
    clearView();
    title.textContent = "$ " + text;
    title.title = text;
    download.href = root.dataset.logUrl.replace("SESSION", encodeURIComponent(session)).replace("COMMAND", encodeURIComponent(command));
    download.hidden = false;
    stopButton.hidden = false;
    stopButton.disabled = false;
    setState("Following", "live");
    remember();
  }

  if (stopButton) stopButton.addEventListener("click", function () {
    if (!current || current.ended) return;
    stopButton.disabled = true;
    setState("Stopping", "live");
    send({ type: "stop", session: current.session, command: current.command });
  });

  if (form) form.addEventListener("submit", function (event) {
    event.preventDefault();
    var command = input.value.trim();
    if (!command) return;
    clearView("Starting…");
    setState("Starting", "live");
    send({ type: "run", command: command });
  });

  function onClick(event) {
    var button = event.target.closest("[data-logs-follow]");
    if (button && live) {
      follow(button.dataset.session, button.dataset.command, button.dataset.text);
      // When the socket is not open yet, opening it resumes `current` from line 0.
      live.send(JSON.stringify({ type: "follow", session: button.dataset.session, command: button.dataset.command, after: 0 })) || live.start();
      view.focus();
    } else if (event.target.closest("[data-logs-retry]")) {
      banner.hidden = true;
      if (pollUrl) { attempt = 0; poll(); } else live.retry(true);
    }
  }

  // One listener for the document whatever the runs: it serves the viewer in the page.
  root.sandbarLogs = window.sandbar.logs = {
    click: onClick,
    stop: function () {
      stopped = true;
      window.clearTimeout(pollTimer);
      if (live) live.stop();
    }
  };
  if (!window.sandbar.logsClick) {
    window.sandbar.logsClick = function (event) {
      var viewer = document.querySelector("[data-logs]");
      if (viewer && viewer.sandbarLogs) viewer.sandbarLogs.click(event);
    };
    document.addEventListener("click", window.sandbar.logsClick);
  }

  // -- polling a build log --------------------------------------------------------
  var pollTimer = null;
  var lastState = root.dataset.logsState || "";

  function refreshHead() {
    // The state, the page's head and the toast come from the server's own partial.
    var target = document.getElementById("log-follow");
    if (!target || !window.htmx) return;
    window.htmx.ajax("GET", pollUrl + "?head=1&offset=" + current.offset, { target: target, swap: "outerHTML" });
  }

  function pollFailed() {
    if (attempt >= BACKOFF.length) {
      bannerText.textContent = "The build log keeps failing to load.";
      banner.hidden = false;
      setState("Disconnected", "down");
      return;
    }
    var seconds = BACKOFF[attempt];
    attempt += 1;
    setState("Retrying in " + seconds + " s", "down");
    pollTimer = window.setTimeout(poll, seconds * 1000);
  }

  function poll() {
    window.clearTimeout(pollTimer);
    if (stopped) return;
    var url = pollUrl + "?format=lines&offset=" + current.offset + "&after=" + current.count;
    window.fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (response) {
      var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
      if (response.status === 286 || (response.ok && !json)) {
        // The snapshot is gone: the head refresh says so.
        current.ended = true;
        setState("Stopped", "down");
        refreshHead();
        return null;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (message) {
      if (!message) return;
      attempt = 0;
      banner.hidden = true;
      if (message.reset) { clearView(); current.count = 0; }
      if (message.lines.length) {
        appendLines(message.lines);
        current.count += message.lines.length;
      }
      current.offset = message.offset;
      var changed = message.state !== lastState;
      lastState = message.state;
      if (message.final) {
        current.ended = true;
        var failed = message.state === "error" || message.state === "build_failed";
        setState(failed ? "Build failed" : "Build ended", failed ? "failed" : "ok");
        refreshHead();
        return;
      }
      setState("Following", "live");
      if (changed) refreshHead();
      pollTimer = window.setTimeout(poll, message.more ? 0 : 1000);
    }).catch(pollFailed);
  }

  if (pollUrl) {
    // The server drew the log so far as plain lines: give them their colours.
    view.querySelectorAll(".log-line").forEach(function (row) {
      var text = row.textContent;
      row.textContent = "";
      appendAnsi(row, text);
    });
    shown = view.querySelectorAll(".log-line").length;
    dropped = parseInt(root.dataset.logsDropped || "0", 10);
    if (dropped) trimmedNote();
    current = {
      count: parseInt(root.dataset.logsCount || "0", 10),
      offset: parseInt(root.dataset.logsOffset || "0", 10),
      ended: root.dataset.logsFollowing !== "true",
    };
    download.href = root.dataset.logUrl;
    download.hidden = false;
    view.scrollTop = view.scrollHeight;
    if (!current.ended) { setState("Following", "live"); poll(); }
  } else {
    var last = recalled();
    if (last && last.session && last.command) {
      follow(last.session, last.command, last.text || "");
      live.start();
    }
  }
})();
