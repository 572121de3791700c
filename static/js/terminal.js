// The web terminal: xterm.js over one WebSocket to the dashboard's terminal consumer.
// Binary frames carry terminal bytes both ways; text frames are small JSON control
// messages (see dashboard/terminal/consumers.py). The browser keeps the shell's
// session id, so a reload or a dropped connection comes back to the same shell; closing
// the tab closes the shell after a grace period, unless the reader chose to keep it.
// The socket and its retries are sandbar.reconnect's (reconnect.js).
(function () {
  "use strict";

  var root = document.querySelector("[data-terminal]");
  if (!root || typeof Terminal === "undefined") return;

  var PASTE_CHUNK = 16 * 1024;      // frames well under the toolbox's 64 KiB limit
  var ACK_EVERY = 32 * 1024;        // acknowledge drawn output in batches
  // What is left under a batch is acknowledged a second later: the server pauses only at
  // 2 MiB unacknowledged, and a quicker ack cost it a JSON message per output frame.
  var ACK_DELAY_MS = 1000;
  var SILENCE_MS = 50000;           // the server pings every 20 s: silence means a dead link

  var sandboxId = root.dataset.sandbox;
  var storageKey = "sandbar.terminal." + sandboxId;
  var params = new URLSearchParams(window.location.search);
  var screenEl = root.querySelector("[data-term-screen]");
  var statusEl = root.querySelector("[data-term-status]");
  var statusText = root.querySelector("[data-term-status-text]");
  var noteEl = root.querySelector("[data-term-note]");
  var banner = root.querySelector("[data-term-banner]");
  var bannerText = root.querySelector("[data-term-banner-text]");
  var exitBox = root.querySelector("[data-term-exit]");
  var exitText = root.querySelector("[data-term-exit-text]");
  var pageLink = root.querySelector("[data-term-page]");
  var fullButton = root.querySelector("[data-term-full]");
  var keepBox = root.querySelector("[data-term-keep]");
  var ctrlKey = root.querySelector("[data-key=ctrl]");
  var encoder = new TextEncoder();

  function newId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }
  function stored(key) {
    try { return window.sessionStorage.getItem(key); } catch (e) { return null; }
  }
  function store(key, value) {
    try {
      if (value === null) window.sessionStorage.removeItem(key);
      else window.sessionStorage.setItem(key, value);
    } catch (e) { /* private mode */ }
  }

  var session = params.get("session") || stored(storageKey) || newId();
  // The tab's own shell, remembered from an earlier visit: if it was closed meanwhile
  // (this tab left the page for longer than the grace period), a new one starts
  // instead of a "the shell has ended" notice.
  // So is one named in the address that the server says is this person's own (the "Own
  // page" link): after a restart of the sandbox it is gone, and a new one takes its place.
  var fromMemory = (!params.get("session") && session === stored(storageKey)) ||
    (!!params.get("session") && root.hasAttribute("data-own-session"));
  var seenOpen = false;
  var replaced = false;   // the remembered shell was gone: say so once the new one opens

  // Colours follow the page's theme tokens, so light and dark both read well.
  function theme() {
    var style = window.getComputedStyle(root);
    function token(name, fallback) { return (style.getPropertyValue(name) || "").trim() || fallback; }
    return {
      background: token("--term-bg", "#111418"),
      foreground: token("--term-fg", "#e6eaf0"),
      cursor: token("--term-cursor", "#2dd4bf"),
      selectionBackground: token("--term-selection", "#2dd4bf55")
    };
  }

  var term = new Terminal({
    cursorBlink: true,
    fontFamily: window.getComputedStyle(document.body).getPropertyValue("--mono") || "monospace",
    fontSize: 13,
    scrollback: 5000,
    theme: theme(),
    disableStdin: true
  });
  var fit = new FitAddon.FitAddon();
  term.loadAddon(fit);

  // The WebGL renderer draws cells on a canvas: no per-cell style attributes, which
  // the page's CSP forbids (the DOM renderer colours 24-bit cells with them). Loaded
  // before open(), so the DOM renderer never starts; without WebGL it is the fallback.
  var renderer = "dom";
  function useWebgl() {
    if (typeof WebglAddon === "undefined") return;
    var probe = document.createElement("canvas");
    if (!probe.getContext("webgl2")) return;
    try {
      var webgl = new WebglAddon.WebglAddon();
      webgl.onContextLoss(function () { webgl.dispose(); renderer = "dom"; });
      term.loadAddon(webgl);
      renderer = "webgl";
    } catch (e) { renderer = "dom"; }
  }
  useWebgl();

  // xterm.js builds <style> elements for its scrollbar (and, with the DOM renderer,
  // its cell geometry and palette) and takes no nonce option. The page's CSP accepts
  // them with this response's nonce: stamped on the <style> elements created while the
  // terminal opens, the only time it makes them.
  var nonce = root.dataset.styleNonce;
  var createElement = document.createElement;
  document.createElement = function (tag, options) {
    var el = createElement.call(document, tag, options);
    if (nonce && String(tag).toLowerCase() === "style") el.setAttribute("nonce", nonce);
    return el;
  };
  try { term.open(screenEl); } finally { document.createElement = createElement; }
  fitNow();

  new MutationObserver(function () { term.options.theme = theme(); })
    .observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });

  var state = "connecting";   // connecting | open | down | exited | refused
  var readonly = false;
  var pendingAck = 0;
  var ackTimer = null;
  var countdownTimer = null;
  var lastSize = "";
  var lastTitle = "";
  var titleTimer = null;
  var closeReason = "";

  function setStatus(kind, text) {
    statusEl.dataset.state = kind;
    statusText.textContent = text;
  }

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/ws/sandboxes/" + encodeURIComponent(sandboxId) +
      "/terminal/" + encodeURIComponent(session) + "/?cols=" + term.cols + "&rows=" + term.rows;
  }

  function sendJson(message) {
    live.send(JSON.stringify(message));
  }

  function flushAck() {
    ackTimer = null;
    if (pendingAck > 0) {
      sendJson({ type: "ack", bytes: pendingAck });
      pendingAck = 0;
    }
  }

  function drawn(count) {
    pendingAck += count;
    if (pendingAck >= ACK_EVERY) flushAck();
    else if (!ackTimer) ackTimer = window.setTimeout(flushAck, ACK_DELAY_MS);
  }

  var live = window.sandbar.reconnect({
    url: socketUrl,
    binaryType: "arraybuffer",
    noRetry: [4409, 4410],
    delays: { first: 1000, max: 30000 },
    silenceMs: SILENCE_MS,
    lazy: true,
    onMessage: function (event) {
      if (typeof event.data !== "string") {
        var bytes = new Uint8Array(event.data);
        term.write(bytes, function () { drawn(bytes.length); });
        return;
      }
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      handleControl(message);
    },
    onClose: function (event, info) {
      closeReason = event.reason;
      term.options.disableStdin = true;
      pendingAck = 0;
      if (state === "exited") return false;
      if (!info.everOpened && event.code < 4000) {
        // The first connection never opened: find out why before retrying.
        diagnose();
        return false;
      }
      return undefined;
    },
    onStatus: showStatus
  });

  function showStatus(status, detail) {
    window.clearInterval(countdownTimer);
    if (status === "connecting") {
      state = "connecting";
      setStatus("connecting", "Connecting…");
    } else if (status === "reconnecting") {
      state = "down";
      setStatus("down", "Disconnected");
      if (detail.retryAt === null) { setStatus("connecting", "Reconnecting…"); return; }
      var tick = function () {
        var left = Math.max(1, Math.round((detail.retryAt - Date.now()) / 1000));
        showBanner("Connection lost, retrying in " + left + " s. Typing is off until the shell is back.", true);
      };
      tick();
      countdownTimer = window.setInterval(tick, 1000);
      window.sandbar.announce("Terminal connection lost; retrying.");
    } else if (status === "offline") {
      state = "refused";
      if (detail.code === 4409) {
        showBanner("The sandbox is not running.", true);
        setStatus("down", "Sandbox not running");
      } else if (closeReason) {
        // The sign-in ended or the right was taken away while the shell was open.
        showBanner(closeReason, false);
      } else if (detail.code === null || detail.code < 4000) {
        showBanner(detail.reason, true);
      }
      // Otherwise the server's error message, shown as it came, says why.
      if (detail.code !== 4409) setStatus("down", "Not connected");
    }
  }

  function handleControl(message) {
    if (message.type === "hello") {
      state = "open";
      seenOpen = true;
      readonly = !!message.readonly;
      hideBanner();
      exitBox.hidden = true;
      if (!readonly) store(storageKey, session);
      term.options.disableStdin = readonly;
      setStatus("open", readonly ? "Watching (read-only)" : "Connected");
      noteEl.textContent = readonly ? "Shell of " + message.owner + ": you can watch, not type." : "";
      if (pageLink) pageLink.href = pageLink.href.split("?")[0] + "?session=" + encodeURIComponent(session);
      if (keepBox) { keepBox.checked = stored(storageKey + ".keep." + session) === "1"; keepBox.disabled = readonly; }
      lastSize = "";
      sendResize();
      if (lastTitle) sendJson({ type: "title", title: lastTitle });
      if (!readonly) term.focus();
      if (message.reattached) window.sandbar.announce("Terminal reconnected to the same shell.");
      if (replaced && !readonly) sayReplaced();
      // "Open shells" was drawn before this shell existed: list it now.
      changed();
    } else if (message.type === "ping") {
      sendJson({ type: "pong" });
    } else if (message.type === "exit" && fromMemory && !seenOpen) {
      fromMemory = false;
      replaced = true;
      state = "exited";  // this socket is done: the next one is for the new shell
      window.setTimeout(newShell, 0);
    } else if (message.type === "exit") {
      state = "exited";
      term.options.disableStdin = true;
      var code = message.code === null || message.code === undefined ? "unknown" : message.code;
      exitText.textContent = "The shell ended (exit code " + code + (message.reason ? ", " + message.reason : "") + ").";
      exitBox.hidden = false;
      hideBanner();
      setStatus("exited", "Shell ended");
      window.sandbar.announce(exitText.textContent);
      changed();
    } else if (message.type === "error") {
      if (state === "open") window.sandbar.toast(message.message, "error");
      else showBanner(message.message, false);
    }
  }

  function sayReplaced() {
    replaced = false;
    var words = "Your earlier shell had ended (the sandbox restarted, or it was closed): this is a new one.";
    noteEl.textContent = noteEl.title = words;
    window.sandbar.announce(words);
    window.setTimeout(function () { if (noteEl.textContent === words) noteEl.textContent = ""; }, 10000);
  }

  function changed() {
    document.body.dispatchEvent(new CustomEvent("terminal-changed"));
  }

  function showBanner(text, withRetry) {
    bannerText.textContent = text;
    banner.querySelector("[data-term-retry]").hidden = !withRetry;
    banner.hidden = false;
  }
  function hideBanner() {
    window.clearInterval(countdownTimer);
    banner.hidden = true;
  }

  // The first connection never opened: tell a proxy that blocks WebSockets apart
  // from a signed-out session or a server that is down.
  function diagnose() {
    state = "down";
    fetch(window.location.pathname, { method: "HEAD", credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 302) {
          showBanner("Your session has ended: sign in again to use the terminal.", false);
          setStatus("down", "Signed out");
        } else if (response.ok) {
          showBanner("The server answers, but the WebSocket for the terminal could not be opened: a proxy between you and Sandbar is probably blocking WebSockets (see README, reverse proxy).", true);
          setStatus("down", "WebSockets blocked");
        } else {
          live.retry(false);
        }
      })
      .catch(function () { live.retry(false); });
  }

  function sendResize() {
    var size = term.cols + "x" + term.rows;
    if (size === lastSize) return;
    lastSize = size;
    if (!readonly) sendJson({ type: "resize", cols: term.cols, rows: term.rows });
  }

  function fitNow() {
    try { fit.fit(); } catch (e) { /* hidden or zero-sized: try again on the next resize */ }
  }

  var resizeTimer = null;
  new ResizeObserver(function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () { fitNow(); sendResize(); }, 80);
  }).observe(screenEl);

  // The running program's title (OSC 0/2) names the shell in "Open shells".
  term.onTitleChange(function (title) {
    lastTitle = String(title || "").slice(0, 120);
    window.clearTimeout(titleTimer);
    titleTimer = window.setTimeout(function () {
      if (!readonly) sendJson({ type: "title", title: lastTitle });
    }, 500);
  });

  function sendBytes(bytes) {
    if (readonly || state !== "open" || !live.socket || live.socket.readyState !== WebSocket.OPEN) return;
    // Chunked so a big paste arrives whole and in order without one giant frame.
    for (var start = 0; start < bytes.length; start += PASTE_CHUNK) {
      live.socket.send(bytes.subarray(start, start + PASTE_CHUNK));
    }
  }

  // -- extra keys (touch and narrow screens) ------------------------------------------
  var ctrlOn = false;
  function setCtrl(on) {
    ctrlOn = on;
    if (ctrlKey) ctrlKey.setAttribute("aria-pressed", on ? "true" : "false");
  }
  function withCtrl(data) {
    // Sticky Ctrl applies to the next key typed: a letter or @[\]^_ becomes its control code.
    if (!ctrlOn || data.length !== 1) return data;
    setCtrl(false);
    var code = data.toUpperCase().charCodeAt(0);
    if (code >= 64 && code <= 95) return String.fromCharCode(code - 64);
    if (data === "?") return "\x7f";
    return data;
  }
  function arrow(letter) {
    return (term.modes.applicationCursorKeysMode ? "\x1bO" : "\x1b[") + letter;
  }
  var KEYS = {
    esc: function () { return "\x1b"; },
    tab: function () { return "\t"; },
    up: function () { return arrow("A"); },
    down: function () { return arrow("B"); },
    right: function () { return arrow("C"); },
    left: function () { return arrow("D"); },
    pipe: function () { return "|"; },
    tilde: function () { return "~"; }
  };
  root.querySelectorAll("[data-term-keys] button").forEach(function (button) {
    // Keep the focus (and a phone's keyboard) in the terminal.
    button.addEventListener("pointerdown", function (event) { event.preventDefault(); });
    button.addEventListener("click", function () {
      var key = button.dataset.key;
      if (key === "ctrl") { setCtrl(!ctrlOn); }
      else if (KEYS[key]) { sendBytes(encoder.encode(withCtrl(KEYS[key]()))); setCtrl(false); }
      if (!readonly) term.focus();
    });
  });

  term.onData(function (data) { sendBytes(encoder.encode(withCtrl(data))); });
  term.onBinary(function (data) {
    var bytes = new Uint8Array(data.length);
    for (var i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 255;
    sendBytes(bytes);
  });

  // -- full screen ----------------------------------------------------------------------
  function syncFullscreen() {
    var on = document.fullscreenElement === root;
    root.classList.toggle("is-fullscreen", on);
    if (fullButton) {
      fullButton.setAttribute("aria-pressed", on ? "true" : "false");
      fullButton.querySelector("[data-term-full-text]").textContent = on ? "Exit full screen" : "Full screen";
      fullButton.setAttribute("aria-label", on ? "Exit full screen" : "Full screen");  // icon-only when narrow
    }
    fitNow();
    sendResize();
    if (!readonly) term.focus();
  }
  if (fullButton) {
    if (!document.fullscreenEnabled) fullButton.hidden = true;
    fullButton.addEventListener("click", function () {
      if (document.fullscreenElement) document.exitFullscreen();
      else root.requestFullscreen().catch(function (error) { window.sandbar.toast("Full screen is not available: " + error.message, "error"); });
    });
  }
  document.addEventListener("fullscreenchange", syncFullscreen);

  // -- this tab's shell: kept, or closed when the tab goes ----------------------------
  if (keepBox) keepBox.addEventListener("change", function () {
    store(storageKey + ".keep." + session, keepBox.checked ? "1" : null);
  });
  window.addEventListener("pagehide", function () {
    if (readonly || state !== "open" || stored(storageKey + ".keep." + session) === "1") return;
    // A reload comes back within the grace period and keeps the shell; a closed tab does not.
    var token = (JSON.parse(document.body.getAttribute("hx-headers") || "{}"))["X-CSRFToken"] || "";
    fetch(root.dataset.leaveUrl.replace("SESSION", encodeURIComponent(session)), {
      method: "POST", keepalive: true, credentials: "same-origin", headers: { "X-CSRFToken": token }
    }).catch(function () { /* the page is going: nothing to tell */ });
  });

  // "Open shells" marks the one in this tab.
  document.body.addEventListener("htmx:configRequest", function (event) {
    var target = event.detail.elt;
    if (target && target.closest && target.closest("#shells, [data-shells]")) event.detail.parameters.this = session;
  });

  root.addEventListener("click", function (event) {
    if (event.target.closest("[data-term-retry]")) {
      hideBanner();
      if (live.socket) live.socket.close();
      live.start();
    } else if (event.target.closest("[data-term-new]")) {
      newShell();
    }
  });

  function newShell() {
    session = newId();
    store(storageKey, session);
    if (params.has("session")) {
      params.delete("session");
      var query = params.toString();
      window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
    }
    state = "connecting";
    live.stop();
    exitBox.hidden = true;
    term.reset();
    live.start();
    changed();
  }

  // Test hooks: what a browser test needs to cut the connection like a network drop,
  // and to read the screen (the WebGL renderer draws it on a canvas).
  window.sandbarTerminal = {
    session: function () { return session; },
    renderer: function () { return renderer; },
    drop: function () { if (live.socket) live.socket.close(); },
    text: function () {
      var buffer = term.buffer.active;
      var lines = [];
      for (var y = 0; y < term.rows; y++) {
        var line = buffer.getLine(buffer.viewportY + y);
        lines.push(line ? line.translateToString(true) : "");
      }
      return lines.join("\n");
    }
  };

  live.start();
})();
