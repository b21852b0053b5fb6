// @ts-check
// Inline SVG charts (no chart library): a line chart with min/max band and a bar chart.
const NS = 'http://www.w3.org/2000/svg';
const el = (tag, attrs = {}, text) => {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
};
const W = 800; const H = 260; const PAD = { l: 56, r: 12, t: 14, b: 36 };

function axes(svg, y0, y1, labels) {
  for (let i = 0; i <= 4; i += 1) {
    const v = y0 + ((y1 - y0) * i) / 4;
    const y = H - PAD.b - ((H - PAD.t - PAD.b) * i) / 4;
    svg.append(el('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, stroke: '#d0d7de' }));
    svg.append(el('text', { x: PAD.l - 6, y: y + 4, 'text-anchor': 'end' }, Number(v.toPrecision(4)).toString()));
  }
  for (const [x, t] of labels) svg.append(el('text', { x, y: H - PAD.b + 16, 'text-anchor': 'middle' }, t));
}

// points: [{t: Date, avg, min, max}]
// from/to: the x range (default: the points'); mark: a time drawn as a red vertical line.
export function lineChart(points, { title = '', unit = '', from = null, to = null, mark = null } = {}) {
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title} chart` });
  if (!points.length) { svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data in this range')); return svg; }
  const t0 = from ? +from : +points[0].t; const t1 = Math.max(to ? +to : +points[points.length - 1].t, t0 + 1);
  let y0 = Math.min(...points.map((p) => p.min ?? p.avg)); let y1 = Math.max(...points.map((p) => p.max ?? p.avg));
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const X = (t) => PAD.l + ((W - PAD.l - PAD.r) * (+t - t0)) / (t1 - t0);
  const Y = (v) => H - PAD.b - ((H - PAD.t - PAD.b) * (v - y0)) / (y1 - y0);
  const labels = [0, 0.25, 0.5, 0.75, 1].map((f) => { const t = new Date(t0 + f * (t1 - t0)); return [X(t), t.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })]; });
  axes(svg, y0, y1, labels);
  const band = points.map((p) => `${X(p.t)},${Y(p.max ?? p.avg)}`).concat(points.slice().reverse().map((p) => `${X(p.t)},${Y(p.min ?? p.avg)}`));
  svg.append(el('polygon', { points: band.join(' '), fill: '#0969da22', stroke: 'none' }));
  svg.append(el('polyline', { points: points.map((p) => `${X(p.t)},${Y(p.avg)}`).join(' '), fill: 'none', stroke: '#0969da', 'stroke-width': 2 }));
  if (mark && +mark >= t0 && +mark <= t1) {
    svg.append(el('line', { x1: X(mark), x2: X(mark), y1: PAD.t, y2: H - PAD.b, stroke: '#cf222e', 'stroke-width': 2, 'stroke-dasharray': '5 3', class: 'mark' }));
  }
  svg.append(el('text', { x: PAD.l, y: PAD.t - 2 }, `${title}${unit ? ` (${unit})` : ''}`));
  return svg;
}

// bars: [{label, values: [number...]}], series names and colours
export function barChart(bars, series, colors = ['#0969da', '#1a7f37', '#bf8700']) {
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': series.join(', ') });
  const max = Math.max(1, ...bars.flatMap((b) => b.values.map(Number)));
  const slot = (W - PAD.l - PAD.r) / Math.max(1, bars.length);
  const bw = Math.max(2, (slot * 0.8) / series.length);
  axes(svg, 0, max, bars.map((b, i) => [PAD.l + slot * (i + 0.5), b.label]));
  bars.forEach((b, i) => b.values.forEach((v, j) => {
    const y = H - PAD.b - ((H - PAD.t - PAD.b) * Number(v)) / max;
    const r = el('rect', { x: PAD.l + slot * i + slot * 0.1 + bw * j, y, width: bw, height: H - PAD.b - y, fill: colors[j % colors.length] });
    r.append(el('title', {}, `${b.label} ${series[j]}: ${Number(v).toLocaleString()}`));
    svg.append(r);
  }));
  series.forEach((s, j) => {
    svg.append(el('rect', { x: W - PAD.r - 150, y: PAD.t + j * 16, width: 10, height: 10, fill: colors[j % colors.length] }));
    svg.append(el('text', { x: W - PAD.r - 134, y: PAD.t + 9 + j * 16 }, s));
  });
  return svg;
}
