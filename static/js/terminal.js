// The web terminal: xterm.js over one WebSocket to the dashboard's terminal consumer.
// Binary frames carry terminal bytes both ways; text frames are small JSON control
// messages (see dashboard/terminal/consumers.py). The browser keeps the shell's
// session id, so a reload or a dropped connection comes back to the same shell.
(function () {
  "use strict";

  var root = document.querySelector("[data-terminal]");
  if (!root || typeof Terminal === "undefined") return;

  var PASTE_CHUNK = 16 * 1024;      // frames well under the toolbox's 64 KiB limit
  var ACK_EVERY = 32 * 1024;        // acknowledge drawn output in batches
  var SILENCE_MS = 50000;           // the server pings every 20 s: silence means a dead link
  var BACKOFF = [1, 2, 4, 8, 15, 30];
  var NO_RETRY = { 4400: true, 4401: true, 4403: true, 4404: true, 4409: true, 4410: true };

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
  var fullLink = root.querySelector("[data-term-full]");
  var encoder = new TextEncoder();

  function newId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }
  function remembered() {
    try { return window.sessionStorage.getItem(storageKey); } catch (e) { return null; }
  }
  function remember(id) {
    try { window.sessionStorage.setItem(storageKey, id); } catch (e) { /* private mode */ }
  }

  var session = params.get("session") || remembered() || newId();

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

  // xterm.js colours 24-bit cells through style attributes, which the CSP blocks;
  // the same declarations through the CSSOM are allowed (markup still cannot style
  // anything). Only spans, which is what xterm.js draws cells with, are rerouted.
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (name === "style" && this.tagName === "SPAN") {
      this.style.cssText = String(value);
      return;
    }
    return setAttribute.call(this, name, value);
  };

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

  // xterm.js builds <style> elements for its geometry and theme; the page's CSP
  // accepts them only with this response's nonce.
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

  var ws = null;
  var state = "connecting";   // connecting | open | down | exited | refused
  var readonly = false;
  var attempt = 0;
  var everOpened = false;
  var retryTimer = null;
  var countdownTimer = null;
  var silenceTimer = null;
  var pendingAck = 0;
  var ackTimer = null;
  var lastSize = "";

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
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
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
    else if (!ackTimer) ackTimer = window.setTimeout(flushAck, 30);
  }

  function touch() {
    window.clearTimeout(silenceTimer);
    silenceTimer = window.setTimeout(function () {
      // Nothing for too long: the link is dead even if the socket has not noticed.
      if (ws) ws.close();
    }, SILENCE_MS);
  }

  function connect() {
    window.clearTimeout(retryTimer);
    window.clearInterval(countdownTimer);
    state = "connecting";
    setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
    var socket = new WebSocket(socketUrl());
    socket.binaryType = "arraybuffer";
    ws = socket;
    var opened = false;
    socket.onopen = function () {
      opened = true;
      everOpened = true;
      touch();
    };
    socket.onmessage = function (event) {
      if (socket !== ws) return;
      touch();
      if (typeof event.data !== "string") {
        var bytes = new Uint8Array(event.data);
        term.write(bytes, function () { drawn(bytes.length); });
        return;
      }
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      handleControl(message);
    };
    socket.onclose = function (event) {
      if (socket !== ws) return;
      window.clearTimeout(silenceTimer);
      ws = null;
      term.options.disableStdin = true;
      if (state === "exited") return;
      if (NO_RETRY[event.code]) {
        state = "refused";
        if (event.code === 4409) {
          showBanner("The sandbox is not running.", true);
        } else if (event.reason) {
          // The sign-in ended or the right was taken away while the shell was open.
          showBanner(event.reason, false);
        }
        setStatus("down", event.code === 4409 ? "Sandbox not running" : "Not connected");
        return;
      }
      if (!opened && !everOpened) {
        diagnose();
        return;
      }
      scheduleRetry();
    };
  }

  function handleControl(message) {
    if (message.type === "hello") {
      state = "open";
      attempt = 0;
      readonly = !!message.readonly;
      hideBanner();
      exitBox.hidden = true;
      if (!readonly) remember(session);
      term.options.disableStdin = readonly;
      setStatus("open", readonly ? "Watching (read-only)" : "Connected");
      noteEl.textContent = readonly ? "Shell of " + message.owner + ": you can watch, not type." : "";
      if (fullLink) fullLink.href = fullLink.href.split("?")[0] + "?session=" + encodeURIComponent(session);
      sendResize(true);
      if (!readonly) term.focus();
      if (message.reattached) window.sandbar.announce("Terminal reconnected to the same shell.");
      // "Open shells" was drawn before this shell existed: list it now.
      document.body.dispatchEvent(new CustomEvent("terminal-changed"));
    } else if (message.type === "ping") {
      sendJson({ type: "pong" });
    } else if (message.type === "exit") {
      state = "exited";
      term.options.disableStdin = true;
      var code = message.code === null || message.code === undefined ? "unknown" : message.code;
      exitText.textContent = "The shell ended (exit code " + code + (message.reason ? ", " + message.reason : "") + ").";
      exitBox.hidden = false;
      hideBanner();
      setStatus("exited", "Shell ended");
      window.sandbar.announce(exitText.textContent);
      document.body.dispatchEvent(new CustomEvent("terminal-changed"));
    } else if (message.type === "error") {
      if (state === "open") window.sandbar.toast(message.message, "error");
      else showBanner(message.message, false);
    }
  }

  function showBanner(text, withRetry) {
    bannerText.textContent = text;
    banner.querySelector("[data-term-retry]").hidden = !withRetry;
    banner.hidden = false;
  }
  function hideBanner() { banner.hidden = true; }

  function scheduleRetry() {
    state = "down";
    var seconds = BACKOFF[Math.min(attempt, BACKOFF.length - 1)];
    attempt += 1;
    setStatus("down", "Disconnected");
    var left = seconds;
    function tick() {
      showBanner("Connection lost, retrying in " + left + " s. Typing is off until the shell is back.", true);
    }
    tick();
    window.sandbar.announce("Terminal connection lost; retrying.");
    countdownTimer = window.setInterval(function () {
      left -= 1;
      if (left <= 0) { window.clearInterval(countdownTimer); return; }
      tick();
    }, 1000);
    retryTimer = window.setTimeout(connect, seconds * 1000);
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
          scheduleRetry();
        }
      })
      .catch(function () { scheduleRetry(); });
  }

  function sendResize(force) {
    var size = term.cols + "x" + term.rows;
    if (!force && size === lastSize) return;
    lastSize = size;
    if (!readonly) sendJson({ type: "resize", cols: term.cols, rows: term.rows });
  }

  function fitNow() {
    try { fit.fit(); } catch (e) { /* hidden or zero-sized: try again on the next resize */ }
  }

  var resizeTimer = null;
  new ResizeObserver(function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () { fitNow(); sendResize(false); }, 80);
  }).observe(screenEl);

  function sendBytes(bytes) {
    if (!ws || ws.readyState !== WebSocket.OPEN || readonly || state !== "open") return;
    // Chunked so a big paste arrives whole and in order without one giant frame.
    for (var start = 0; start < bytes.length; start += PASTE_CHUNK) {
      ws.send(bytes.subarray(start, start + PASTE_CHUNK));
    }
  }
  term.onData(function (data) { sendBytes(encoder.encode(data)); });
  term.onBinary(function (data) {
    var bytes = new Uint8Array(data.length);
    for (var i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 255;
    sendBytes(bytes);
  });

  root.addEventListener("click", function (event) {
    if (event.target.closest("[data-term-retry]")) {
      attempt = 0;
      hideBanner();
      if (ws) ws.close();
      connect();
    } else if (event.target.closest("[data-term-new]")) {
      session = newId();
      remember(session);
      if (params.has("session")) {
        params.delete("session");
        var query = params.toString();
        window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
      }
      var old = ws;
      ws = null;
      if (old) old.close();
      exitBox.hidden = true;
      term.reset();
      attempt = 0;
      connect();
      document.body.dispatchEvent(new CustomEvent("terminal-changed"));
    }
  });

  // Test hook: what a browser test needs to cut the connection like a network drop.
  window.sandbarTerminal = {
    session: function () { return session; },
    drop: function () { if (ws) ws.close(); }
  };

  connect();
})();
