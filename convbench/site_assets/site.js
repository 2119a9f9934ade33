/* convbench's static pages: the figures (plotly.js) and filters of a published site and of a
   run's report.html. Every page embeds its data as JSON (<script type="application/json">);
   nothing is fetched, so the pages work from file://. */
"use strict";
var convbench = (function () {
  var CONFIG = {displaylogo: false, responsive: true};

  function fmtTime(s) {
    if (s === null || s === undefined || !isFinite(s)) return "-";
    var a = Math.abs(s);
    if (a >= 1) return s.toFixed(3) + " s";
    if (a >= 1e-3) return (s * 1e3).toFixed(3) + " ms";
    if (a >= 1e-6) return (s * 1e6).toFixed(1) + " us";
    return (s * 1e9).toFixed(0) + " ns";
  }

  function data(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  function iqr(r) {
    return (r.q1 !== null && r.q3 !== null) ? fmtTime(r.q1) + " - " + fmtTime(r.q3) : "-";
  }

  var HOVER = "problem: %{customdata[0]}<br>backend: %{customdata[1]}<br>median: %{customdata[2]}" +
              "<br>IQR: %{customdata[3]}<br>commit: %{customdata[4]}<extra></extra>";

  function errorBars(rows) {
    return {type: "data", symmetric: false, thickness: 1, width: 2,
            array: rows.map(function (r) { return r.q3 !== null ? Math.max(r.q3 - r.median, 0) : 0; }),
            arrayminus: rows.map(function (r) { return r.q1 !== null ? Math.max(r.median - r.q1, 0) : 0; })};
  }

  /* median time per problem, one trace per backend (a run's page and report.html) */
  function runFigure(div, rows, commit) {
    var problems = [], byBackend = {}, order = [];
    rows.forEach(function (r) {
      if (problems.indexOf(r.problem) < 0) problems.push(r.problem);
      if (!(r.backend in byBackend)) { byBackend[r.backend] = []; order.push(r.backend); }
      byBackend[r.backend].push(r);
    });
    var traces = order.map(function (b) {
      var rs = byBackend[b];
      return {type: "scatter", mode: "markers", name: b, x: rs.map(function (r) { return r.problem; }),
              y: rs.map(function (r) { return r.median; }), error_y: errorBars(rs), marker: {size: 8},
              customdata: rs.map(function (r) {
                return [r.problem, r.backend, fmtTime(r.median), iqr(r), (commit || "-").slice(0, 10)]; }),
              hovertemplate: HOVER};
    });
    var layout = {height: 520, margin: {l: 70, r: 20, t: 30, b: 150}, hovermode: "closest",
                  title: {text: "median time per call (hover a point; bars: IQR of the rounds)", font: {size: 13}},
                  xaxis: {type: "category", categoryorder: "array", categoryarray: problems, tickangle: 35,
                          tickfont: {size: 9}, automargin: true},
                  yaxis: {type: "log", title: {text: "seconds"}}};
    return Plotly.react(div, traces, layout, CONFIG);
  }

  function initRun() {
    var d = data("run-data");
    var rows = Array.prototype.slice.call(document.querySelectorAll("#rows tbody tr"));
    var selects = Array.prototype.slice.call(document.querySelectorAll("select.filter"));
    function apply() {
      var visible = [];
      rows.forEach(function (tr, i) {
        var ok = selects.every(function (s) { return s.value === "" || tr.getAttribute("data-" + s.name) === s.value; });
        tr.style.display = ok ? "" : "none";
        if (ok) visible.push(d.rows[i]);
      });
      document.getElementById("count").textContent = visible.length + " of " + d.rows.length + " rows shown";
      runFigure(document.getElementById("fig"), visible.filter(function (r) { return r.status === "passed"; }), d.commit);
    }
    selects.forEach(function (s) { s.addEventListener("change", apply); });
    apply();
  }

  /* one cell across commits, one line per machine, the detected steps marked */
  function initHistory() {
    var d = data("history-data");
    var sel = document.getElementById("cell");
    function draw() {
      var key = sel.value, shapes = [], notes = [];
      var series = d.series.filter(function (s) { return s.cell === key; });
      var traces = series.map(function (s) {
        var pts = s.median.map(function (m, i) { return {median: m, q1: s.q1[i], q3: s.q3[i]}; });
        s.steps.forEach(function (st) {
          var color = st.ratio > 1 ? "#c0392b" : "#27ae60";
          shapes.push({type: "line", xref: "x", yref: "paper", x0: s.dates[st.at], x1: s.dates[st.at], y0: 0, y1: 1,
                       line: {color: color, dash: "dash", width: 1.5}});
          notes.push({x: s.dates[st.at], y: 1, xref: "x", yref: "paper", yanchor: "bottom", showarrow: false,
                      font: {color: color, size: 11},
                      text: (st.ratio > 1 ? "slower " : "faster ") + "x" + st.ratio.toFixed(2) + " in " +
                            s.commits[st.before].slice(0, 7) + ".." + s.commits[st.at].slice(0, 7)});
        });
        s.drifts.forEach(function (dr) {
          var color = dr.ratio > 1 ? "rgba(192,57,43,0.12)" : "rgba(39,174,96,0.12)";
          shapes.push({type: "rect", xref: "x", yref: "paper", x0: s.dates[dr.start], x1: s.dates[dr.end], y0: 0, y1: 1,
                       fillcolor: color, line: {width: 0}});
          notes.push({x: s.dates[dr.end], y: 1, xref: "x", yref: "paper", yanchor: "bottom", showarrow: false,
                      font: {size: 11}, text: "drift x" + dr.ratio.toFixed(2) + " over " + (dr.end - dr.start) + " commits"});
        });
        return {type: "scatter", mode: "lines+markers", name: s.machine_label, x: s.dates, y: s.median,
                error_y: errorBars(pts), marker: {size: 8},
                customdata: s.median.map(function (m, i) {
                  return [s.problem, s.backend, fmtTime(m), iqr(pts[i]), s.commits[i].slice(0, 10)]; }),
                hovertemplate: HOVER};
      });
      var layout = {height: 460, margin: {l: 70, r: 20, t: 50, b: 60}, hovermode: "closest", shapes: shapes,
                    annotations: notes, legend: {orientation: "h", y: -0.2},
                    xaxis: {type: "date", title: {text: "commit date"}},
                    yaxis: {type: "log", title: {text: "median seconds per call"}}};
      Plotly.react(document.getElementById("fig"), traces, layout, CONFIG);
      document.getElementById("count").textContent = series.length + " machine(s), " +
        series.reduce(function (n, s) { return n + s.median.length; }, 0) + " points, " +
        series.reduce(function (n, s) { return n + s.steps.length; }, 0) + " step(s) and " +
        series.reduce(function (n, s) { return n + s.drifts.length; }, 0) + " drift(s) beyond " + d.threshold + "x";
    }
    sel.addEventListener("change", draw);
    draw();
  }

  /* two runs (or machines) side by side: a table of their common cells and A against B */
  function initCompare() {
    var d = data("compare-data");
    var a = document.getElementById("run-a"), b = document.getElementById("run-b");
    function draw() {
      var ra = d.runs[+a.value], rb = d.runs[+b.value], keys = [];
      Object.keys(ra.cells).forEach(function (k) { if (k in rb.cells) keys.push(k); });
      var body = document.querySelector("#pairs tbody");
      body.innerHTML = "";
      var cd = [], xs = [], ys = [];
      keys.forEach(function (k) {
        var ca = ra.cells[k], cb = rb.cells[k], ratio = cb[0] / ca[0];
        var tr = document.createElement("tr");
        [k.split("|")[0], k.split("|")[1], fmtTime(ca[0]), fmtTime(cb[0]), ratio.toFixed(2) + "x"].forEach(function (v) {
          var td = document.createElement("td"); td.textContent = v; tr.appendChild(td); });
        body.appendChild(tr);
        xs.push(ca[0]); ys.push(cb[0]);
        cd.push([k.split("|")[0], k.split("|")[1], fmtTime(ca[0]) + " (A) / " + fmtTime(cb[0]) + " (B)",
                 fmtTime(ca[1]) + " - " + fmtTime(ca[2]) + " (A)", ra.commit.slice(0, 10) + " (A) / " +
                 rb.commit.slice(0, 10) + " (B)"]);
      });
      var lo = Math.min.apply(null, xs.concat(ys)), hi = Math.max.apply(null, xs.concat(ys));
      var traces = [{type: "scatter", mode: "markers", name: "cells", x: xs, y: ys, customdata: cd,
                     marker: {size: 8}, hovertemplate: HOVER},
                    {type: "scatter", mode: "lines", name: "same time", x: [lo, hi], y: [lo, hi], hoverinfo: "skip",
                     line: {dash: "dot", color: "#888"}}];
      var layout = {height: 520, margin: {l: 80, r: 20, t: 30, b: 60}, hovermode: "closest",
                    xaxis: {type: "log", title: {text: "A: " + ra.label}}, yaxis: {type: "log", title: {text: "B: " + rb.label}}};
      Plotly.react(document.getElementById("fig"), traces, layout, CONFIG);
      var gm = keys.length ? Math.exp(ys.reduce(function (acc, y, i) { return acc + Math.log(y / xs[i]); }, 0) / keys.length) : NaN;
      document.getElementById("count").textContent = keys.length + " cells in both runs; geometric mean B/A " +
        (isFinite(gm) ? gm.toFixed(2) + "x" : "-");
    }
    a.addEventListener("change", draw);
    b.addEventListener("change", draw);
    draw();
  }

  return {fmtTime: fmtTime, runFigure: runFigure, initRun: initRun, initHistory: initHistory,
          initCompare: initCompare, data: data};
})();
