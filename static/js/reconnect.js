// sandbar.reconnect(options): one WebSocket that comes back by itself. Every live page
// (sandbox list and page, terminal, logs) goes through it, so they agree on when to
// retry, how fast, and what they tell the reader.
//
//   var live = sandbar.reconnect({
//     url: "/ws/sandboxes/",   // a path on this host (ws: or wss: as the page), or a
//                              // function returning a full URL, asked on every attempt
//     binaryType: "arraybuffer",          // optional
//     noRetry: [4409],                    // close codes that end it, besides 4400/4401/4403/4404
//     delays: { first: 1000, max: 15000 },// doubling, each drawn within ±25 % (jitter)
//     maxAttempts: Infinity,              // failed attempts in a row before giving up ("offline")
//     silenceMs: 0,                       // > 0: a socket silent this long is dropped and retried
//     lazy: false,                        // true: no socket until start(), retry() or send()
//     onOpen: function (socket, info) {},      // info.reconnected: an earlier socket had opened
//     onMessage: function (event, socket) {},
//     onClose: function (event, info) {},      // return false to not retry (then "idle");
//                                              // info: { opened, everOpened, code, reason }
//     onStatus: function (status, detail) {}   // see below
//   });
//
// Status: "connecting" (never open yet), "live" (open), "reconnecting" (lost; another try
// is due at detail.retryAt, a Date.now() time, or under way when that is null), "offline"
// (given up: a no-retry code or too many failures in a row), "idle" (no socket because the
// page wants none: lazy, onClose returned false, or stop()). detail also has code, reason
// (the server's close reason, else a plain sentence for the code) and attempt.
//
//   live.send(data)   true if sent now; false while down (nothing is queued: keep it and
//                     send it from onOpen; start() to connect a lazy or idle socket)
//   live.start()      connect now if not connected (after lazy, idle or offline)
//   live.retry(now)   connect now (now === true) or after the next backoff delay
//   live.stop()       close for good (status "idle", no retry until start())
//   live.status, live.detail, live.socket   the current state, read-only by convention
(function () {
  "use strict";

  var NO_RETRY = [4400, 4401, 4403, 4404];
  var REASONS = {
    1006: "The connection was lost.",
    1011: "The server failed.",
    1012: "The server is restarting.",
    4400: "The server refused this connection.",
    4401: "You are signed out.",
    4403: "You are not allowed to see this.",
    4404: "It no longer exists."
  };

  function absolute(path) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + path;
  }

  function reconnect(options) {
    var noRetry = NO_RETRY.concat(options.noRetry || []);
    var first = (options.delays && options.delays.first) || 1000;
    var max = (options.delays && options.delays.max) || 15000;
    var maxAttempts = options.maxAttempts || Infinity;
    var silenceMs = options.silenceMs || 0;
    var attempt = 0;          // failed attempts since the last open
    var everOpened = false;
    var stopped = false;
    var leaving = false;      // the page is being unloaded: its sockets close, say nothing
    var retryTimer = null;
    var silenceTimer = null;

    var handle = {
      status: "connecting",
      detail: { code: null, reason: "", retryAt: null, attempt: 0 },
      socket: null,
      send: send,
      start: start,
      retry: retry,
      stop: stop
    };

    function report(status, detail) {
      handle.status = status;
      handle.detail = detail;
      if (options.onStatus) options.onStatus(status, detail);
    }

    function url() {
      return typeof options.url === "function" ? options.url() : absolute(options.url);
    }

    function delay() {
      var base = Math.min(max, first * Math.pow(2, Math.max(0, attempt - 1)));
      return Math.round(base * (0.75 + Math.random() * 0.5));
    }

    function quiet() {
      window.clearTimeout(silenceTimer);
      if (!silenceMs) return;
      silenceTimer = window.setTimeout(function () {
        // Nothing for too long: the link is dead even if the socket has not noticed.
        if (handle.socket) handle.socket.close();
      }, silenceMs);
    }

    function connect() {
      window.clearTimeout(retryTimer);
      retryTimer = null;
      stopped = false;
      if (handle.socket) return;
      report(everOpened ? "reconnecting" : "connecting",
        { code: handle.detail.code, reason: handle.detail.reason, retryAt: null, attempt: attempt });
      var socket;
      try {
        socket = new WebSocket(url());
      } catch (error) {
        // A malformed URL never gets better: give up and say why.
        report("offline", { code: null, reason: String(error.message || error), retryAt: null, attempt: attempt });
        return;
      }
      if (options.binaryType) socket.binaryType = options.binaryType;
      handle.socket = socket;
      var opened = false;
      socket.addEventListener("open", function () {
        if (handle.socket !== socket) return;
        opened = true;
        var reconnected = everOpened;
        everOpened = true;
        attempt = 0;
        quiet();
        report("live", { code: null, reason: "", retryAt: null, attempt: 0 });
        if (options.onOpen) options.onOpen(socket, { reconnected: reconnected });
      });
      socket.addEventListener("message", function (event) {
        if (handle.socket !== socket) return;
        quiet();
        if (options.onMessage) options.onMessage(event, socket);
      });
      socket.addEventListener("close", function (event) {
        if (handle.socket !== socket) return;
        handle.socket = null;
        window.clearTimeout(silenceTimer);
        if (leaving) return;
        var reason = event.reason || REASONS[event.code] || (opened ? REASONS[1006] : "Could not connect.");
        var info = { opened: opened, everOpened: everOpened, code: event.code, reason: reason };
        var wanted = options.onClose ? options.onClose(event, info) : undefined;
        if (stopped) return;
        attempt += 1;
        var detail = { code: event.code, reason: reason, retryAt: null, attempt: attempt };
        if (wanted === false) {
          stopped = true;
          report("idle", detail);
          return;
        }
        if (noRetry.indexOf(event.code) >= 0 || attempt > maxAttempts) {
          stopped = true;
          report("offline", detail);
          return;
        }
        schedule(detail);
      });
    }

    function schedule(detail) {
      var wait = delay();
      detail.retryAt = Date.now() + wait;
      report("reconnecting", detail);
      window.clearTimeout(retryTimer);
      retryTimer = window.setTimeout(connect, wait);
    }

    function send(data) {
      var socket = handle.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(data);
      return true;
    }

    function start() {
      if (!handle.socket) connect();
    }

    function retry(now) {
      if (handle.socket) return;
      if (now) { connect(); return; }
      stopped = false;
      schedule({ code: handle.detail.code, reason: handle.detail.reason, retryAt: null, attempt: attempt });
    }

    function stop() {
      stopped = true;
      window.clearTimeout(retryTimer);
      window.clearTimeout(silenceTimer);
      var socket = handle.socket;
      handle.socket = null;
      if (socket) socket.close(1000);
      report("idle", { code: 1000, reason: "", retryAt: null, attempt: attempt });
    }

    // The network came back, or the tab was brought back: no need to sit out the delay.
    function soon() {
      if (retryTimer && !handle.socket) connect();
    }
    window.addEventListener("online", soon);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") soon();
    });
    window.addEventListener("pagehide", function () { leaving = true; });
    window.addEventListener("pageshow", function (event) {
      leaving = false;
      if (event.persisted && !stopped && !handle.socket) connect();
    });

    if (!options.lazy) connect();
    else report("idle", { code: null, reason: "", retryAt: null, attempt: 0 });
    return handle;
  }

  window.sandbar = window.sandbar || {};
  window.sandbar.reconnect = reconnect;
})();
