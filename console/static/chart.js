// @ts-check
// Inline SVG charts (no chart library): a line chart with min/max band, units, threshold
// lines and hover values, and a bar chart with units, hover values and a legend kept clear
// of the bars. Times are the user's zone's (ui.js fmtIn).
import { fmtIn } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
const el = (tag, attrs = {}, text) => {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
};
const W = 800; const H = 260;
const num = (v) => Number(Number(v).toPrecision(4)).toLocaleString();

function axes(svg, pad, y0, y1, labels, unit) {
  for (let i = 0; i <= 4; i += 1) {
    const v = y0 + ((y1 - y0) * i) / 4;
    const y = H - pad.b - ((H - pad.t - pad.b) * i) / 4;
    svg.append(el('line', { x1: pad.l, x2: W - pad.r, y1: y, y2: y, stroke: '#d0d7de' }));
    svg.append(el('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end' }, num(v)));
  }
  if (unit) svg.append(el('text', { x: 4, y: pad.t - 4, class: 'unit' }, unit));
  for (const [x, t] of labels) svg.append(el('text', { x, y: H - pad.b + 16, 'text-anchor': 'middle' }, t));
}

/**
 * points: [{t: Date, avg, min, max}]; from/to: the x range (default: the points');
 * mark: a time drawn as a red vertical line; thresholds: [{value, label}] drawn as dashed lines.
 * @param {any[]} points
 * dates: the points are calendar days (a report's month or week buckets, at 00:00 UTC): labels
 * and hover values are those dates, not a time of day in the user's zone.
 * @param {{title?: string, unit?: string, from?: Date | null, to?: Date | null, mark?: Date | null, thresholds?: {value: number, label: string}[], dates?: boolean}} [opts]
 */
export function lineChart(points, { title = '', unit = '', from = null, to = null, mark = null, thresholds = [], dates = false } = {}) {
  const pad = { l: 56, r: 12, t: 22, b: 36 };
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}${unit ? ` in ${unit}` : ''} chart` });
  if (!points.length) { svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data in this range')); return svg; }
  let t0 = from ? +from : +points[0].t; let t1 = Math.max(to ? +to : +points[points.length - 1].t, t0 + 1);
  if (points.length === 1 && !from && !to) { t0 -= 86400000; t1 = t0 + 2 * 86400000; } // one point: in the middle
  const day = (t) => new Date(t).toLocaleDateString([], { timeZone: 'UTC', year: 'numeric', month: 'short', day: 'numeric' });
  const when = (t, o) => (dates ? day(t) : fmtIn(t, o));
  let y0 = Math.min(...points.map((p) => p.min ?? p.avg), ...thresholds.map((x) => x.value));
  let y1 = Math.max(...points.map((p) => p.max ?? p.avg), ...thresholds.map((x) => x.value));
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const X = (t) => pad.l + ((W - pad.l - pad.r) * (+t - t0)) / (t1 - t0);
  const Y = (v) => H - pad.b - ((H - pad.t - pad.b) * (v - y0)) / (y1 - y0);
  const labels = dates
    ? points.filter((_, i) => i % Math.ceil(points.length / 6) === 0).map((p) => [X(p.t), day(p.t)])
    : [0, 0.25, 0.5, 0.75, 1].map((f) => { const t = new Date(t0 + f * (t1 - t0)); return [X(t), fmtIn(t, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })]; });
  axes(svg, pad, y0, y1, labels, unit);
  const band = points.map((p) => `${X(p.t)},${Y(p.max ?? p.avg)}`).concat(points.slice().reverse().map((p) => `${X(p.t)},${Y(p.min ?? p.avg)}`));
  svg.append(el('polygon', { points: band.join(' '), fill: '#0969da22', stroke: 'none' }));
  svg.append(el('polyline', { points: points.map((p) => `${X(p.t)},${Y(p.avg)}`).join(' '), fill: 'none', stroke: '#0969da', 'stroke-width': 2 }));
  // few points: each a dot (a line through one point draws nothing)
  if (points.length <= 60) for (const p of points) svg.append(el('circle', { cx: X(p.t), cy: Y(p.avg), r: 4, fill: '#0969da', class: 'point' }));
  for (const th of thresholds) {
    svg.append(el('line', { x1: pad.l, x2: W - pad.r, y1: Y(th.value), y2: Y(th.value), stroke: '#bf8700', 'stroke-width': 1.5, 'stroke-dasharray': '6 4', class: 'threshold' }));
    svg.append(el('text', { x: W - pad.r - 4, y: Y(th.value) - 4, 'text-anchor': 'end', class: 'threshold-label' }, `${th.label} ${num(th.value)}${unit ? ` ${unit}` : ''}`));
  }
  if (mark && +mark >= t0 && +mark <= t1) {
    svg.append(el('line', { x1: X(mark), x2: X(mark), y1: pad.t, y2: H - pad.b, stroke: '#cf222e', 'stroke-width': 2, 'stroke-dasharray': '5 3', class: 'mark' }));
  }
  // hover values: one invisible column per point, its tooltip the bucket's figures
  const colW = Math.max(2, (W - pad.l - pad.r) / points.length);
  for (const p of points) {
    const r = el('rect', { x: X(p.t) - colW / 2, y: pad.t, width: colW, height: H - pad.t - pad.b, fill: 'transparent', class: 'hover' });
    const u = unit ? ` ${unit}` : '';
    r.append(el('title', {}, `${when(p.t)}: ${num(p.avg)}${u}${p.min !== undefined && p.max !== undefined ? ` (min ${num(p.min)}, max ${num(p.max)})` : ''}`));
    svg.append(r);
  }
  svg.append(el('text', { x: pad.l, y: pad.t - 8 }, title));
  return svg;
}

/**
 * bars: [{label, values: [number...]}], series names and colours.
 * @param {{label: string, values: number[]}[]} bars
 * @param {string[]} series
 * @param {{unit?: string, title?: string, colors?: string[]}} [opts]
 */
export function barChart(bars, series, { unit = '', title = '', colors = ['#0969da', '#1a7f37', '#bf8700', '#8250df', '#cf222e'] } = {}) {
  const pad = { l: 70, r: 12, t: 40, b: 36 }; // the legend has its own band above the plot
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title || series.join(', ')}${unit ? ` in ${unit}` : ''}` });
  if (!bars.length) { svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data')); return svg; }
  // the axis spans zero and every value: a negative value is a bar down from zero
  const finite = bars.flatMap((b) => b.values.map(Number)).filter(Number.isFinite);
  // a round top (and bottom) so the axis ticks are round numbers (not 4.725 or 1,006,006)
  const nice = (x) => { if (x <= 0) return 0; const p = 10 ** Math.floor(Math.log10(x)); return [1, 2, 2.5, 4, 5, 10].map((m) => m * p).find((v) => v >= x - 1e-9 * p) || 10 * p; };
  const max = nice(Math.max(1, ...finite));
  const min = -nice(-Math.min(0, ...finite));
  const slot = (W - pad.l - pad.r) / Math.max(1, bars.length);
  const bw = Math.max(2, (slot * 0.8) / series.length);
  const every = Math.ceil(bars.length / 12); // at most 12 axis labels: no overlap
  const room = Math.max(6, Math.floor((slot * every) / 7)); // characters a label's slot holds (~7 units each)
  axes(svg, pad, min, max, bars.map((b, i) => [pad.l + slot * (i + 0.5), i % every ? '' : String(b.label).slice(0, room)]), unit);
  const Y = (v) => H - pad.b - ((H - pad.t - pad.b) * (v - min)) / (max - min);
  bars.forEach((b, i) => b.values.forEach((v, j) => {
    const n = Number.isFinite(Number(v)) ? Number(v) : 0;
    const y = Math.min(Y(n), Y(0));
    const r = el('rect', { x: pad.l + slot * i + slot * 0.1 + bw * j, y, width: bw, height: Math.abs(Y(n) - Y(0)), fill: colors[j % colors.length] });
    r.append(el('title', {}, `${b.label} · ${series[j]}: ${Number(v).toLocaleString()}${unit ? ` ${unit}` : ''}`));
    svg.append(r);
  }));
  let x = pad.l;
  if (title) { svg.append(el('text', { x, y: 14, class: 'chart-title' }, title)); }
  series.forEach((s, j) => {
    svg.append(el('rect', { x, y: 22, width: 10, height: 10, fill: colors[j % colors.length] }));
    svg.append(el('text', { x: x + 14, y: 31 }, s));
    x += 24 + s.length * 7;
  });
  return svg;
}

/**
 * slices: [{label, value}]; a pie with a legend beside it and hover values.
 * @param {{label: string, value: number}[]} slices
 * @param {{unit?: string, title?: string}} [opts]
 */
export function pieChart(slices, { unit = '', title = '' } = {}) {
  const colors = ['#0969da', '#1a7f37', '#bf8700', '#8250df', '#cf222e', '#0550ae', '#953800', '#116329', '#bf3989', '#6e7781'];
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title || 'pie chart' });
  const pos = slices.filter((s) => Number(s.value) > 0);
  const total = pos.reduce((a, s) => a + Number(s.value), 0);
  if (!total) { svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data')); return svg; }
  const cx = 130; const cy = H / 2; const r = 110;
  let a0 = -Math.PI / 2;
  pos.slice(0, 10).forEach((s, i) => {
    const share = Number(s.value) / total;
    const a1 = a0 + share * 2 * Math.PI;
    const large = share > 0.5 ? 1 : 0;
    const d = share >= 0.9999 ? `M ${cx - r} ${cy} a ${r} ${r} 0 1 0 ${2 * r} 0 a ${r} ${r} 0 1 0 ${-2 * r} 0`
      : `M ${cx} ${cy} L ${cx + r * Math.cos(a0)} ${cy + r * Math.sin(a0)} A ${r} ${r} 0 ${large} 1 ${cx + r * Math.cos(a1)} ${cy + r * Math.sin(a1)} Z`;
    const p = el('path', { d, fill: colors[i % colors.length], stroke: '#fff' });
    p.append(el('title', {}, `${s.label}: ${Number(s.value).toLocaleString()}${unit ? ` ${unit}` : ''} (${Math.round(share * 100)}%)`));
    svg.append(p);
    svg.append(el('rect', { x: 280, y: 20 + i * 22, width: 12, height: 12, fill: colors[i % colors.length] }));
    svg.append(el('text', { x: 298, y: 31 + i * 22 }, `${String(s.label).slice(0, 40)} · ${Number(s.value).toLocaleString()}${unit ? ` ${unit}` : ''} (${Math.round(share * 100)}%)`));
    a0 = a1;
  });
  return svg;
}

/**
 * Closed-won history, then the forecast: one bar per period (history green, forecast blue),
 * the forecast's 90% interval as whiskers, a scenario's baseline as a dashed tick, a dashed
 * line where the forecast begins, and hover values on each period's column.
 * past: [{label, value}]; future: [{label, value, low, high, baseline?, run?}] (baseline:
 * the expected revenue without the what-if, drawn where it differs; run: the run rate the
 * closed-won history alone forecasts, drawn as a dot).
 * @param {{label: string, value: number}[]} past
 * @param {{label: string, value: number, low: number, high: number, baseline?: number | null, run?: number | null}[]} future
 * @param {{unit?: string, title?: string}} [opts]
 */
export function forecastChart(past, future, { unit = '', title = '' } = {}) {
  const pad = { l: 70, r: 12, t: 40, b: 36 };
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart forecast-chart', role: 'img', 'aria-label': `${title || 'Forecast'}${unit ? ` in ${unit}` : ''}: closed-won history, then expected revenue with its 90% interval` });
  const n = past.length + future.length;
  if (!n) { svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data')); return svg; }
  const u = unit ? ` ${unit}` : '';
  const values = [...past.map((p) => p.value), ...future.flatMap((f) => [f.value, f.high, f.baseline ?? 0, f.run ?? 0])].map(Number).filter(Number.isFinite);
  const max = Math.max(1, ...values);
  const slot = (W - pad.l - pad.r) / n;
  const bw = Math.max(2, slot * 0.6);
  const every = Math.ceil(n / 12);
  const all = [...past, ...future];
  axes(svg, pad, 0, max, all.map((b, i) => [pad.l + slot * (i + 0.5), i % every ? '' : String(b.label).slice(0, 14)]), unit);
  const Y = (v) => H - pad.b - ((H - pad.t - pad.b) * v) / max;
  const x0 = (i) => pad.l + slot * i + (slot - bw) / 2;
  const colors = { past: '#1a7f37', future: '#0969da', whisker: '#24292f', baseline: '#bf8700', run: '#8250df' };
  const has = (v) => v !== undefined && v !== null;
  const differs = (f) => has(f.baseline) && Math.abs(f.baseline - f.value) >= 0.005;
  past.forEach((p, i) => {
    svg.append(el('rect', { x: x0(i), y: Y(p.value), width: bw, height: H - pad.b - Y(p.value), fill: colors.past, class: 'past' }));
  });
  future.forEach((f, j) => {
    const i = past.length + j;
    const cx = x0(i) + bw / 2;
    svg.append(el('rect', { x: x0(i), y: Y(f.value), width: bw, height: H - pad.b - Y(f.value), fill: colors.future, class: 'expected' }));
    svg.append(el('line', { x1: cx, x2: cx, y1: Y(f.low), y2: Y(f.high), stroke: colors.whisker, 'stroke-width': 1.5, class: 'interval' }));
    for (const v of [f.low, f.high]) svg.append(el('line', { x1: cx - bw / 4, x2: cx + bw / 4, y1: Y(v), y2: Y(v), stroke: colors.whisker, 'stroke-width': 1.5 }));
    if (has(f.run)) svg.append(el('circle', { cx, cy: Y(f.run), r: 4, fill: colors.run, class: 'run' }));
    if (differs(f)) {
      svg.append(el('line', { x1: x0(i) - 2, x2: x0(i) + bw + 2, y1: Y(f.baseline), y2: Y(f.baseline), stroke: colors.baseline, 'stroke-width': 2.5, 'stroke-dasharray': '5 3', class: 'baseline' }));
    }
  });
  if (past.length && future.length) {
    const x = pad.l + slot * past.length;
    svg.append(el('line', { x1: x, x2: x, y1: pad.t, y2: H - pad.b, stroke: '#57606a', 'stroke-dasharray': '4 4' }));
  }
  // hover values: one invisible column per period, its tooltip the period's figures
  all.forEach((b, i) => {
    const r = el('rect', { x: pad.l + slot * i, y: pad.t, width: slot, height: H - pad.t - pad.b, fill: 'transparent', class: 'hover' });
    const f = /** @type {any} */ (b);
    const text = i < past.length ? `${b.label} · closed won: ${num(b.value)}${u}`
      : `${b.label} · expected: ${num(f.value)}${u} (90% interval ${num(f.low)}–${num(f.high)}${u})${has(f.baseline) ? ` · baseline ${num(f.baseline)}${u}` : ''}${has(f.run) ? ` · run rate ${num(f.run)}${u}` : ''}`;
    r.append(el('title', {}, text));
    svg.append(r);
  });
  let x = pad.l;
  if (title) svg.append(el('text', { x, y: 14, class: 'chart-title' }, title));
  const legend = [['closed won', colors.past], ['expected', colors.future], ['90% interval', colors.whisker]];
  if (future.some((f) => has(f.run))) legend.push(['run rate', colors.run]);
  if (future.some(differs)) legend.push(['baseline', colors.baseline]);
  for (const [s, c] of legend) {
    svg.append(el('rect', { x, y: 22, width: 10, height: 10, fill: c }));
    svg.append(el('text', { x: x + 14, y: 31 }, s));
    x += 24 + s.length * 7;
  }
  return svg;
}
