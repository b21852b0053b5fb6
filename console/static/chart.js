// @ts-check
// Inline SVG charts (no chart library): a line chart with min/max band, units, threshold
// lines and hover values, and a bar chart with units, hover values and a legend kept clear
// of the bars. Times are the user's zone's (ui.js fmtIn).
//
// A chart is drawn in SVG units and scaled to its box. On a desktop the drawing is 800
// units wide; on a phone it is as wide as the screen (so a unit is about a CSS pixel and
// text keeps its size instead of shrinking to a third), and the layout follows the width
// it has: fewer axis labels, slanted category labels, compact tick numbers, legends that
// wrap onto more rows, a pie's legend under it.
import { fmtIn } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
const el = (tag, attrs = {}, text) => {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
};
const H = 260;
const CHAR = 7; // the width of a character of chart text, in units (11-12 px text)
const NARROW = 560; // below this width (units) a chart lays out for a phone
const num = (v) => Number(Number(v).toPrecision(4)).toLocaleString();
const compact = (v) => Number(v).toLocaleString(undefined, { notation: 'compact', maximumSignificantDigits: 3 });

/** The drawing's width: 800 units, or the screen's width on a phone (less the page's margins). */
const widthNow = () => Math.round(Math.min(800, Math.max(300, (window.innerWidth || 800) - 32)));

/** @typedef {{W: number, H: number, pad: {l: number, r: number, t: number, b: number}, narrow: boolean}} Frame */

/** The frame of a chart of width `W` with these paddings (narrow: a tighter left margin). */
function frame(W, pad, height = H) {
  const narrow = W < NARROW;
  return { W, H: height, pad: narrow ? { ...pad, l: Math.min(pad.l, 44), r: Math.min(pad.r, 8) } : pad, narrow };
}

/** A label cut to `n` characters, with an ellipsis when cut. */
const cut = (t, n) => { const s = String(t); return s.length <= n ? s : `${s.slice(0, Math.max(1, n - 1))}…`; };

/**
 * The category axis' labels of `names` at `xs`: as many as fit side by side, cut to their
 * slot; on a narrow chart whose labels do not fit flat, slanted and cut at 16 characters.
 * @param {Frame} g @param {string[]} names @param {number[]} xs
 */
function categoryLabels(g, names, xs) {
  const plot = g.W - g.pad.l - g.pad.r;
  const slot = plot / Math.max(1, names.length);
  let every = Math.ceil(names.length / (g.narrow ? Math.max(2, Math.floor(plot / 56)) : 12));
  let room = Math.max(6, Math.floor((slot * every) / CHAR)); // characters a label's slot holds
  const slant = g.narrow && names.some((n, i) => i % every === 0 && String(n).length > room);
  if (slant) { every = Math.ceil(names.length / Math.max(2, Math.floor(plot / 18))); room = 16; }
  return { slant, labels: names.map((n, i) => [xs[i], i % every ? '' : cut(n, room)]) };
}

/** The room below the plot for category labels (slanted ones need their length's height). */
const below = (slant, labels) => (slant ? 20 + Math.ceil(Math.max(...labels.map(([, t]) => t.length)) * CHAR * 0.64) : 36);

/**
 * Grid lines with the value axis' ticks, the unit, and the labels under the plot.
 * @param {Element} svg @param {Frame} g @param {number} y0 @param {number} y1
 * @param {any[]} labels [x, text] pairs @param {string} unit @param {boolean} [slant]
 */
function axes(svg, g, y0, y1, labels, unit, slant = false) {
  const { W, pad } = g;
  const h = g.H;
  for (let i = 0; i <= 4; i += 1) {
    const v = y0 + ((y1 - y0) * i) / 4;
    const y = h - pad.b - ((h - pad.t - pad.b) * i) / 4;
    svg.append(el('line', { x1: pad.l, x2: W - pad.r, y1: y, y2: y, stroke: '#d0d7de' }));
    svg.append(el('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end' }, g.narrow ? compact(v) : num(v)));
  }
  if (unit) svg.append(el('text', { x: 4, y: pad.t - 10, class: 'unit' }, unit)); // clear of the top tick
  let right = -Infinity; // where the last flat label ends: one that would touch it is left out
  for (const [x, t] of labels) {
    if (!t) continue;
    if (slant) { // read from its tick down to the left
      const y = h - pad.b + 12;
      svg.append(el('text', { x, y, 'text-anchor': 'end', transform: `rotate(-40 ${x} ${y})`, class: 'slanted' }, t));
      continue;
    }
    // centred on its tick, kept clear of the value axis and inside the drawing
    const w = String(t).length * CHAR;
    const anchor = x - w / 2 < pad.l - 2 ? 'start' : x + w / 2 > W - 2 ? 'end' : 'middle';
    const at = anchor === 'start' ? Math.max(2, x - 2) : anchor === 'end' ? Math.min(W - 2, x + 2) : x;
    const left = anchor === 'start' ? at : anchor === 'end' ? at - w : at - w / 2;
    if (left < right + CHAR) continue;
    right = left + w;
    svg.append(el('text', { x: at, y: h - pad.b + 16, 'text-anchor': anchor }, t));
  }
}

/**
 * A legend of coloured squares from `x`, wrapping onto another row at the drawing's edge.
 * Returns the y of the row below the legend.
 * @param {Element} svg @param {Frame} g @param {number} x @param {[string, string][]} items
 */
function legend(svg, g, x, items) {
  let y = 22;
  let at = x;
  for (const [s, c] of items) {
    const text = cut(s, Math.floor((g.W - x - 24) / CHAR));
    const w = 24 + text.length * CHAR;
    if (at > x && at + w > g.W - g.pad.r) { at = x; y += 18; }
    svg.append(el('rect', { x: at, y, width: 10, height: 10, fill: c }));
    svg.append(el('text', { x: at + 14, y: y + 9 }, text));
    at += w;
  }
  return y + 18;
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
  const W = widthNow();
  const g = frame(W, { l: 56, r: 12, t: 22, b: 36 });
  const { pad } = g;
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
  // as many time labels as fit side by side (about 14 characters each, a gap between)
  const fit = Math.max(2, Math.floor((W - pad.l - pad.r) / (15 * CHAR)));
  const labels = dates
    ? points.filter((_, i) => i % Math.ceil(points.length / Math.min(6, fit)) === 0).map((p) => [X(p.t), day(p.t)])
    : (fit >= 5 ? [0, 0.25, 0.5, 0.75, 1] : fit >= 3 ? [0, 0.5, 1] : [0, 1]).map((f) => { const t = new Date(t0 + f * (t1 - t0)); return [X(t), fmtIn(t, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })]; });
  axes(svg, g, y0, y1, labels, unit);
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
  svg.append(el('text', { x: pad.l, y: pad.t - 8 }, cut(title, Math.floor((W - pad.l) / CHAR))));
  return svg;
}

/**
 * bars: [{label, values: [number...]}], series names and colours.
 * @param {{label: string, values: number[]}[]} bars
 * @param {string[]} series
 * @param {{unit?: string, title?: string, colors?: string[]}} [opts]
 */
export function barChart(bars, series, { unit = '', title = '', colors = ['#0969da', '#1a7f37', '#bf8700', '#8250df', '#cf222e'] } = {}) {
  const W = widthNow();
  const g = frame(W, { l: 70, r: 12, t: 40, b: 36 });
  const { pad } = g;
  const aria = `${title || series.join(', ')}${unit ? ` in ${unit}` : ''}`;
  if (!bars.length) {
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': aria });
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data'));
    return svg;
  }
  // the title, then the legend in its own band above the plot (more rows when narrow)
  const head = el('g', { class: 'legend' });
  if (title) head.append(el('text', { x: pad.l, y: 14, class: 'chart-title' }, cut(title, Math.floor((W - pad.l) / CHAR))));
  pad.t = Math.max(pad.t, legend(head, g, pad.l, series.map((s, j) => [s, colors[j % colors.length]])));
  const slot = (W - pad.l - pad.r) / Math.max(1, bars.length);
  const { slant, labels } = categoryLabels(g, bars.map((b) => b.label), bars.map((_, i) => pad.l + slot * (i + 0.5)));
  pad.b = below(slant, labels);
  g.H = pad.t + (H - 76) + pad.b; // the plot keeps its height; the drawing grows around it
  const svg = el('svg', { viewBox: `0 0 ${W} ${g.H}`, class: 'chart', role: 'img', 'aria-label': aria });
  // the axis spans zero and every value: a negative value is a bar down from zero
  const finite = bars.flatMap((b) => b.values.map(Number)).filter(Number.isFinite);
  // a round top (and bottom) so the axis ticks are round numbers (not 4.725 or 1,006,006)
  const nice = (x) => { if (x <= 0) return 0; const p = 10 ** Math.floor(Math.log10(x)); return [1, 2, 2.5, 4, 5, 10].map((m) => m * p).find((v) => v >= x - 1e-9 * p) || 10 * p; };
  const max = nice(Math.max(1, ...finite));
  const min = -nice(-Math.min(0, ...finite));
  const bw = Math.max(2, (slot * 0.8) / series.length);
  axes(svg, g, min, max, labels, unit, slant);
  const Y = (v) => g.H - pad.b - ((g.H - pad.t - pad.b) * (v - min)) / (max - min);
  bars.forEach((b, i) => b.values.forEach((v, j) => {
    const n = Number.isFinite(Number(v)) ? Number(v) : 0;
    const y = Math.min(Y(n), Y(0));
    const r = el('rect', { x: pad.l + slot * i + slot * 0.1 + bw * j, y, width: bw, height: Math.abs(Y(n) - Y(0)), fill: colors[j % colors.length] });
    r.append(el('title', {}, `${b.label} · ${series[j]}: ${Number(v).toLocaleString()}${unit ? ` ${unit}` : ''}`));
    svg.append(r);
  }));
  svg.append(head);
  return svg;
}

/**
 * slices: [{label, value}]; a pie with a legend beside it and hover values.
 * @param {{label: string, value: number}[]} slices
 * @param {{unit?: string, title?: string}} [opts]
 */
export function pieChart(slices, { unit = '', title = '' } = {}) {
  const colors = ['#0969da', '#1a7f37', '#bf8700', '#8250df', '#cf222e', '#0550ae', '#953800', '#116329', '#bf3989', '#6e7781'];
  const W = widthNow();
  const narrow = W < NARROW;
  const pos = slices.filter((s) => Number(s.value) > 0).slice(0, 10);
  // wide: the legend beside the pie; narrow: the pie centred, its legend under it
  const r = narrow ? Math.min(100, W / 2 - 20) : 110;
  const cx = narrow ? W / 2 : 130; const cy = narrow ? r + 12 : H / 2;
  const lx = narrow ? 8 : 280; const ly = narrow ? 2 * r + 32 : 20;
  const height = narrow ? ly + pos.length * 22 + 4 : H;
  const svg = el('svg', { viewBox: `0 0 ${W} ${height}`, class: 'chart', role: 'img', 'aria-label': title || 'pie chart' });
  const total = pos.reduce((a, s) => a + Number(s.value), 0);
  if (!total) { svg.setAttribute('viewBox', `0 0 ${W} ${H}`); svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data')); return svg; }
  let a0 = -Math.PI / 2;
  pos.forEach((s, i) => {
    const share = Number(s.value) / total;
    const a1 = a0 + share * 2 * Math.PI;
    const large = share > 0.5 ? 1 : 0;
    const d = share >= 0.9999 ? `M ${cx - r} ${cy} a ${r} ${r} 0 1 0 ${2 * r} 0 a ${r} ${r} 0 1 0 ${-2 * r} 0`
      : `M ${cx} ${cy} L ${cx + r * Math.cos(a0)} ${cy + r * Math.sin(a0)} A ${r} ${r} 0 ${large} 1 ${cx + r * Math.cos(a1)} ${cy + r * Math.sin(a1)} Z`;
    const p = el('path', { d, fill: colors[i % colors.length], stroke: '#fff' });
    const figures = `${Number(s.value).toLocaleString()}${unit ? ` ${unit}` : ''} (${Math.round(share * 100)}%)`;
    p.append(el('title', {}, `${s.label}: ${figures}`));
    svg.append(p);
    svg.append(el('rect', { x: lx, y: ly + i * 22, width: 12, height: 12, fill: colors[i % colors.length] }));
    // the label cut to what the width leaves beside its figures
    const room = Math.min(40, Math.floor((W - lx - 22) / CHAR) - figures.length - 3);
    svg.append(el('text', { x: lx + 18, y: ly + 11 + i * 22 }, `${cut(s.label, Math.max(6, room))} · ${figures}`));
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
  const W = widthNow();
  const g = frame(W, { l: 70, r: 12, t: 40, b: 36 });
  const { pad } = g;
  const aria = `${title || 'Forecast'}${unit ? ` in ${unit}` : ''}: closed-won history, then expected revenue with its 90% interval`;
  const n = past.length + future.length;
  if (!n) {
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart forecast-chart', role: 'img', 'aria-label': aria });
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data'));
    return svg;
  }
  const u = unit ? ` ${unit}` : '';
  const has = (v) => v !== undefined && v !== null;
  const differs = (f) => has(f.baseline) && Math.abs(f.baseline - f.value) >= 0.005;
  const colors = { past: '#1a7f37', future: '#0969da', whisker: '#24292f', baseline: '#bf8700', run: '#8250df' };
  // the title, then the legend in its own band above the plot (more rows when narrow)
  const head = el('g', { class: 'legend' });
  if (title) head.append(el('text', { x: pad.l, y: 14, class: 'chart-title' }, cut(title, Math.floor((W - pad.l) / CHAR))));
  /** @type {[string, string][]} */
  const keys = [['closed won', colors.past], ['expected', colors.future], ['90% interval', colors.whisker]];
  if (future.some((f) => has(f.run))) keys.push(['run rate', colors.run]);
  if (future.some(differs)) keys.push(['baseline', colors.baseline]);
  pad.t = Math.max(pad.t, legend(head, g, pad.l, keys));
  const values = [...past.map((p) => p.value), ...future.flatMap((f) => [f.value, f.high, f.baseline ?? 0, f.run ?? 0])].map(Number).filter(Number.isFinite);
  const max = Math.max(1, ...values);
  const slot = (W - pad.l - pad.r) / n;
  const bw = Math.max(2, slot * 0.6);
  const all = [...past, ...future];
  const { slant, labels } = categoryLabels(g, all.map((b) => b.label), all.map((_, i) => pad.l + slot * (i + 0.5)));
  pad.b = below(slant, labels);
  g.H = pad.t + (H - 76) + pad.b; // the plot keeps its height; the drawing grows around it
  const svg = el('svg', { viewBox: `0 0 ${W} ${g.H}`, class: 'chart forecast-chart', role: 'img', 'aria-label': aria });
  axes(svg, g, 0, max, labels, unit, slant);
  const Y = (v) => g.H - pad.b - ((g.H - pad.t - pad.b) * v) / max;
  const x0 = (i) => pad.l + slot * i + (slot - bw) / 2;
  past.forEach((p, i) => {
    svg.append(el('rect', { x: x0(i), y: Y(p.value), width: bw, height: g.H - pad.b - Y(p.value), fill: colors.past, class: 'past' }));
  });
  future.forEach((f, j) => {
    const i = past.length + j;
    const cx = x0(i) + bw / 2;
    svg.append(el('rect', { x: x0(i), y: Y(f.value), width: bw, height: g.H - pad.b - Y(f.value), fill: colors.future, class: 'expected' }));
    svg.append(el('line', { x1: cx, x2: cx, y1: Y(f.low), y2: Y(f.high), stroke: colors.whisker, 'stroke-width': 1.5, class: 'interval' }));
    for (const v of [f.low, f.high]) svg.append(el('line', { x1: cx - bw / 4, x2: cx + bw / 4, y1: Y(v), y2: Y(v), stroke: colors.whisker, 'stroke-width': 1.5 }));
    if (has(f.run)) svg.append(el('circle', { cx, cy: Y(f.run), r: 4, fill: colors.run, class: 'run' }));
    if (differs(f)) {
      svg.append(el('line', { x1: x0(i) - 2, x2: x0(i) + bw + 2, y1: Y(f.baseline), y2: Y(f.baseline), stroke: colors.baseline, 'stroke-width': 2.5, 'stroke-dasharray': '5 3', class: 'baseline' }));
    }
  });
  if (past.length && future.length) {
    const x = pad.l + slot * past.length;
    svg.append(el('line', { x1: x, x2: x, y1: pad.t, y2: g.H - pad.b, stroke: '#57606a', 'stroke-dasharray': '4 4' }));
  }
  // hover values: one invisible column per period, its tooltip the period's figures
  all.forEach((b, i) => {
    const r = el('rect', { x: pad.l + slot * i, y: pad.t, width: slot, height: g.H - pad.t - pad.b, fill: 'transparent', class: 'hover' });
    const f = /** @type {any} */ (b);
    const text = i < past.length ? `${b.label} · closed won: ${num(b.value)}${u}`
      : `${b.label} · expected: ${num(f.value)}${u} (90% interval ${num(f.low)}–${num(f.high)}${u})${has(f.baseline) ? ` · baseline ${num(f.baseline)}${u}` : ''}${has(f.run) ? ` · run rate ${num(f.run)}${u}` : ''}`;
    r.append(el('title', {}, text));
    svg.append(r);
  });
  svg.append(head);
  return svg;
}
