/* simtrain console: a C x C matrix as a heatmap on a <canvas>, on a fixed 0..1 colour scale (white to
   dark blue, as the API's PNG preview; `max` stretches it to 0..max), class labels on the left and top,
   values written in the cells when they are large enough. Fits the canvas's parent width; sharp on
   high-density screens.

     simtrainHeatmap.draw(canvas, matrix, labels, {maxWidth: 420, max: 1, label: "similarity"})
     simtrainHeatmap.inkedPixels(canvas)   // how many pixels are not white (tests: something was drawn)
*/
"use strict";
(function () {
  const STOPS = [[247, 251, 255], [107, 174, 214], [8, 48, 107]];

  function color(t) {
    t = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0));
    const seg = t < 0.5 ? 0 : 1, u = t < 0.5 ? t / 0.5 : (t - 0.5) / 0.5;
    const a = STOPS[seg], b = STOPS[seg + 1];
    return "rgb(" + a.map((v, i) => Math.round(v + (b[i] - v) * u)).join(",") + ")";
  }

  function layout(canvas, n, labels, opts) {
    const room = Math.min(opts.maxWidth || 420, (canvas.parentElement && canvas.parentElement.clientWidth) || 420);
    const showLabels = n <= 40;
    const chars = showLabels ? Math.min(10, Math.max(1, ...labels.map(l => String(l).length))) : 0;
    const margin = showLabels ? 10 + chars * 6 : 4;
    const cell = Math.max(2, Math.min(40, Math.floor((room - margin - 4) / Math.max(n, 1))));
    return { showLabels, margin, cell, w: margin + n * cell + 4, h: margin + n * cell + 4 };
  }

  function labelsOf(ctx, g, labels, n) {
    ctx.fillStyle = "#1d2433"; ctx.font = "10px sans-serif";
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let i = 0; i < n; i++) ctx.fillText(String(labels[i]).slice(0, 10), g.margin - 4, g.margin + i * g.cell + g.cell / 2);
    for (let j = 0; j < n; j++) {
      ctx.save();
      ctx.translate(g.margin + j * g.cell + g.cell / 2, g.margin - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(String(labels[j]).slice(0, 10), 0, 0);
      ctx.restore();
    }
  }

  function draw(canvas, matrix, labels, opts) {
    opts = opts || {};
    const n = matrix.length;
    const top = opts.max > 0 ? opts.max : 1;
    const g = layout(canvas, n, labels, opts);
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(g.w * ratio); canvas.height = Math.round(g.h * ratio);
    canvas.style.width = g.w + "px"; canvas.style.height = g.h + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, g.w, g.h);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const v = matrix[i][j];
        ctx.fillStyle = color(v / top);
        ctx.fillRect(g.margin + j * g.cell, g.margin + i * g.cell, g.cell, g.cell);
        if (g.cell >= 26) {
          ctx.fillStyle = v / top > 0.6 ? "#fff" : "#1d2433";
          ctx.font = "9px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
          ctx.fillText(Number(v).toFixed(2), g.margin + j * g.cell + g.cell / 2, g.margin + i * g.cell + g.cell / 2);
        }
      }
    }
    ctx.strokeStyle = "#d0d5dd"; ctx.strokeRect(g.margin, g.margin, n * g.cell, n * g.cell);
    if (g.showLabels) labelsOf(ctx, g, labels, n);
    canvas.setAttribute("aria-label", (opts.label || "heatmap") + ": " + n + " \u00d7 " + n);
  }

  function inkedPixels(canvas) {
    if (!canvas.width || !canvas.height) return 0;
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let k = 0; k < data.length; k += 4) if (data[k + 3] > 0 && (data[k] < 240 || data[k + 1] < 240 || data[k + 2] < 240)) count++;
    return count;
  }

  window.simtrainHeatmap = Object.freeze({ draw, color, inkedPixels });
})();
