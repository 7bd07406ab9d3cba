"use strict";
// Tiny canvas plots for the Ember dashboard: lines, steps and horizontal guides. No library, no CDN.
// EmberPlot.draw(canvas, [{name, points: [[x, y], ...]}], {step, log, categories, hlines: [{y, color}], xlabel})
// (log: a log10 y axis, for PSI that spans 0.01 to 10)
// sets canvas.dataset.points to the number of points drawn.
const EmberPlot = (() => {
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
  const M = { l: 56, r: 12, t: 10, b: 26 };

  function niceStep(span, n) {
    const raw = span / Math.max(1, n), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  }

  function range(series, opts) {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity, n = 0;
    for (const s of series) {
      for (const [x, y] of s.points) {
        if (y === null || y === undefined || !isFinite(y)) continue;
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); n++;
      }
    }
    for (const h of opts.hlines || []) { y0 = Math.min(y0, h.y); y1 = Math.max(y1, h.y); }
    if (opts.categories) { y0 = -0.5; y1 = opts.categories.length - 0.5; }
    else if (opts.log) { y0 = Math.floor(y0); y1 = Math.max(Math.ceil(y1), y0 + 1); }
    else { y0 = Math.min(0, y0); y1 = y1 > y0 ? y1 + 0.08 * (y1 - y0) : y0 + 1; }
    if (!(x1 > x0)) { x1 = x0 + 1; }
    return { x0, x1, y0, y1, n };
  }

  function axes(ctx, r, X, Y, W, H, opts) {
    ctx.strokeStyle = "#9ca3af"; ctx.fillStyle = "#374151"; ctx.lineWidth = 1; ctx.font = "11px sans-serif";
    ctx.strokeRect(M.l, M.t, W - M.l - M.r, H - M.t - M.b);
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    if (opts.categories) {
      opts.categories.forEach((c, i) => ctx.fillText(c, M.l - 4, Y(i)));
    } else if (opts.log) {
      for (let v = r.y0; v <= r.y1; v++) ctx.fillText(+Math.pow(10, v).toPrecision(1), M.l - 4, Y(v));
    } else {
      const st = niceStep(r.y1 - r.y0, 4);
      for (let v = Math.ceil(r.y0 / st) * st; v <= r.y1; v += st) {
        ctx.fillText(+v.toPrecision(3), M.l - 4, Y(v));
      }
    }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    const sx = niceStep(r.x1 - r.x0, 6);
    for (let v = Math.ceil(r.x0 / sx) * sx; v <= r.x1; v += sx) {
      ctx.fillText(+v.toPrecision(4), X(v), H - M.b + 3);
    }
    ctx.textAlign = "right";
    ctx.fillText(opts.xlabel || "time (s)", W - M.r, H - 12);
  }

  function line(ctx, pts, X, Y, step) {
    ctx.beginPath();
    let started = false, prevY = null;
    for (const [x, y] of pts) {
      if (y === null || y === undefined || !isFinite(y)) { started = false; continue; }
      if (!started) { ctx.moveTo(X(x), Y(y)); started = true; }
      else { if (step) ctx.lineTo(X(x), Y(prevY)); ctx.lineTo(X(x), Y(y)); }
      prevY = y;
    }
    ctx.stroke();
    if (pts.length === 1) { ctx.fillRect(X(pts[0][0]) - 2, Y(pts[0][1]) - 2, 4, 4); }
  }

  function logScale(series, opts) {
    const t = (y) => (y === null || y === undefined ? y : Math.log10(Math.max(y, 1e-3)));
    return [series.map((s) => ({ ...s, points: s.points.map(([x, y]) => [x, t(y)]) })),
      { ...opts, hlines: (opts.hlines || []).map((h) => ({ ...h, y: t(h.y) })) }];
  }

  function draw(canvas, series, opts = {}) {
    if (opts.log) [series, opts] = logScale(series, opts);
    const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    const r = range(series, opts);
    canvas.dataset.points = String(r.n);
    if (!r.n) {
      ctx.fillStyle = "#6b7280"; ctx.font = "13px sans-serif"; ctx.textAlign = "center";
      ctx.fillText("no data", W / 2, H / 2);
      return;
    }
    const X = (x) => M.l + (x - r.x0) / (r.x1 - r.x0) * (W - M.l - M.r);
    const Y = (y) => H - M.b - (y - r.y0) / (r.y1 - r.y0) * (H - M.t - M.b);
    axes(ctx, r, X, Y, W, H, opts);
    for (const h of opts.hlines || []) {
      ctx.strokeStyle = h.color; ctx.setLineDash([4, 3]);
      ctx.beginPath(); ctx.moveTo(M.l, Y(h.y)); ctx.lineTo(W - M.r, Y(h.y)); ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.lineWidth = 1.5; ctx.textAlign = "left"; ctx.textBaseline = "top";
    series.forEach((s, i) => {
      ctx.strokeStyle = ctx.fillStyle = COLORS[i % COLORS.length];
      line(ctx, s.points, X, Y, opts.step);
      if (series.length > 1) { ctx.fillText(s.name, M.l + 6 + 90 * (i % 6), M.t + 2 + 13 * Math.floor(i / 6)); }
    });
  }

  return { draw };
})();
