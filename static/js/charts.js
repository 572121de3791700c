// Time-series charts (dashboard/core/charts.py) drawn with uPlot from `data-chart`.
//
// A page may swap a chart's markup every few seconds (the Metrics tab polls): a chart
// whose key is already drawn keeps its uPlot (moved into the new markup and given the new
// data), so a reader's hover and the canvas survive the swap. Colours come from the
// theme's CSS variables; a theme switch draws every chart again. Loaded again by a tab
// swap, the script only scans for new charts.
(function () {
  "use strict";
  if (window.sandbarCharts) { window.sandbarCharts.scan(document); return; }

  var plots = {};  // key -> { plot, lines, unit, el }
  var openTables = {};  // key -> whether its table was open (kept across swaps)
  var HEIGHT = 180;
  var BYTE_UNITS = { "bytes": true, "bytes/s": true };
  // Byte axes step by powers of two (256 MiB, 512 MiB, 1 GiB), not 953.7 MiB.
  var BINARY_STEPS = [];
  for (var power = 0; power < 52; power++) BINARY_STEPS.push(Math.pow(2, power));

  function css(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function bytes(value, suffix) {
    var units = [["GiB", 1073741824], ["MiB", 1048576], ["KiB", 1024]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(value) >= units[i][1]) return +(value / units[i][1]).toFixed(1) + " " + units[i][0] + suffix;
    }
    return Math.round(value) + " B" + suffix;
  }

  // The same words as format_value in dashboard/core/charts.py.
  function format(value, unit) {
    if (value === null || value === undefined || !isFinite(value)) return "—";
    if (unit === "percent") return value.toFixed(1) + " %";
    if (unit === "bytes") return bytes(value, "");
    if (unit === "bytes/s") return bytes(value, "/s");
    if (unit === "vcpu") return +value.toFixed(3) + " vCPU";
    if (unit === "gib") return +value.toFixed(2) + " GiB";
    return String(+value.toFixed(2));
  }

  function options(data, width) {
    var text = css("--text", "#18202b");
    var muted = css("--muted", "#5a6575");
    var grid = css("--border", "#dde1e7");
    var colours = [css("--chart-1", "#0f766e"), css("--chart-2", "#b45309"), css("--chart-3", "#3f5a8a")];
    var series = [{ label: "Time (local)" }];
    var next = 0;
    data.lines.forEach(function (line) {
      var colour = line.limit ? muted : colours[next++ % colours.length];
      series.push({
        label: line.label,
        stroke: colour,
        width: line.limit ? 1 : 2,
        dash: line.limit ? [6, 4] : undefined,
        fill: line.limit ? undefined : colour + "22",
        spanGaps: false,
        points: { show: false },
        value: function (u, v) { return format(v, data.unit); },
      });
    });
    var axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    return {
      width: width,
      height: HEIGHT,
      series: series,
      scales: {
        // The whole range asked for (1 h, 7 d), not only the part that has samples.
        x: { time: true, range: function (u, min, max) {
          var current = (plots[data.key] && plots[data.key].data) || data;
          return current.span || [min, max];
        } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      },
      axes: [
        Object.assign({}, axis),
        Object.assign({}, axis, {
          // Wide enough for its longest label ("953.7 MiB/s"), measured roughly.
          size: function (u, values) {
            var longest = (values || []).reduce(function (n, v) { return Math.max(n, String(v).length); }, 4);
            return Math.ceil(longest * 7.5) + 16;
          },
          incrs: BYTE_UNITS[data.unit] ? BINARY_STEPS : undefined,
          values: function (u, splits) { return splits.map(function (v) { return format(v, data.unit); }); },
        }),
      ],
      legend: { live: true },
      cursor: { points: { size: 6 } },
      // The legend's text follows the theme (uPlot writes no colour of its own there).
      hooks: { init: [function (u) { u.root.style.color = text; }] },
    };
  }

  function columns(data) {
    return [data.times].concat(data.lines.map(function (line) { return line.values; }));
  }

  function same(a, b) {
    return a.length === b.length && a.every(function (line, i) {
      return line.label === b[i].label && line.limit === b[i].limit;
    });
  }

  function width(el) {
    return Math.max(240, Math.floor(el.getBoundingClientRect().width) || 480);
  }

  function draw(el) {
    var data;
    try { data = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    var known = plots[data.key];
    if (known && known.el === el) return;
    if (known && same(known.lines, data.lines) && known.unit === data.unit) {
      el.appendChild(known.plot.root);
      known.data = data;  // before setData: the x range reads the new span
      known.plot.setData(columns(data));
      known.el = el;
    } else {
      if (known) known.plot.destroy();
      plots[data.key] = known = {
        plot: new window.uPlot(options(data, width(el)), columns(data), el),
        lines: data.lines, unit: data.unit, el: el, data: data,
      };
    }
    known.data = data;
    el.setAttribute("data-drawn", String(data.times.length));
    resizer.observe(el);
  }

  var resizer = new ResizeObserver(function (entries) {
    entries.forEach(function (entry) {
      Object.keys(plots).forEach(function (key) {
        var p = plots[key];
        if (p.el === entry.target) p.plot.setSize({ width: width(entry.target), height: HEIGHT });
      });
    });
  });

  function keepTables(root) {
    root.querySelectorAll("details[data-chart-table]:not([data-kept])").forEach(function (details) {
      var key = details.getAttribute("data-chart-table");
      details.setAttribute("data-kept", "");
      if (openTables[key]) details.open = true;
      details.addEventListener("toggle", function () { openTables[key] = details.open; });
    });
  }

  function scan(root) {
    if (!window.uPlot || !root.querySelectorAll) return;
    if (root.matches && root.matches("[data-chart]")) draw(root);
    root.querySelectorAll("[data-chart]").forEach(draw);
    // Charts whose markup has left the page (another tab or range) are let go.
    Object.keys(plots).forEach(function (key) {
      if (!document.body.contains(plots[key].el)) {
        resizer.unobserve(plots[key].el);
        plots[key].plot.destroy();
        delete plots[key];
      }
    });
    keepTables(root);
  }

  function redrawAll() {
    Object.keys(plots).forEach(function (key) {
      var p = plots[key];
      p.plot.destroy();
      delete plots[key];
      if (document.body.contains(p.el)) draw(p.el);
    });
  }

  window.sandbarCharts = { scan: scan, format: format };
  document.addEventListener("htmx:load", function (event) { scan(event.target); });
  new MutationObserver(redrawAll).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { scan(document); });
  } else {
    scan(document);
  }
})();
