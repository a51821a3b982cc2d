// A rating-history line chart as inline SVG: one point per rated match (oldest left), the
// rating before the first match as the starting point.

import {svg, formatNumber, formatTime} from './dom.js';

const WIDTH = 640;
const HEIGHT = 240;
const PAD = {left: 52, right: 16, top: 14, bottom: 30};

/** Nice round tick values covering [low, high]. */
function ticks(low, high, count = 4) {
  const span = high - low || 1;
  const rough = span / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => span / s <= count) || power * 10;
  const out = [];
  for (let value = Math.ceil(low / step) * step; value <= high + 1e-9; value += step) out.push(value);
  return out;
}

/**
 * The chart of `entries` (the history route's answer, newest first), or null when there is
 * nothing to draw.
 */
export function ratingChart(entries, title) {
  const matches = [...entries].reverse();
  if (matches.length === 0) return null;
  const points = [{value: matches[0].before, label: 'start'}].concat(
    matches.map((entry, index) => ({
      value: entry.after,
      label: `match ${index + 1}, ${formatTime(entry.at_ms)}: ${entry.result}, ` +
        `${formatNumber(entry.before)} → ${formatNumber(entry.after)} ` +
        `(${entry.change >= 0 ? '+' : ''}${formatNumber(entry.change)})`,
      result: entry.result,
    })),
  );
  const values = points.map((p) => Number(p.value));
  let low = Math.min(...values);
  let high = Math.max(...values);
  const margin = Math.max((high - low) * 0.1, 5);
  low -= margin;
  high += margin;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const inset = 10;
  const x = (i) => PAD.left + inset + (points.length === 1 ? (plotW - 2 * inset) / 2 : (i * (plotW - 2 * inset)) / (points.length - 1));
  const y = (v) => PAD.top + plotH - ((v - low) / (high - low)) * plotH;

  const grid = ticks(low, high).map((value) =>
    svg('g', {class: 'tick'},
      svg('line', {x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value)}),
      svg('text', {x: PAD.left - 6, y: y(value) + 4, 'text-anchor': 'end'}, formatNumber(value)),
    ),
  );
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  const area = `${line} L${x(points.length - 1).toFixed(1)},${PAD.top + plotH} L${x(0).toFixed(1)},${PAD.top + plotH} Z`;
  const dots = points.map((p, i) =>
    svg('circle', {cx: x(i).toFixed(1), cy: y(p.value).toFixed(1), r: 3.5, class: `dot ${p.result || 'start'}`},
      svg('title', {}, p.label)),
  );
  const first = matches[0];
  const last = matches[matches.length - 1];
  return svg('svg', {
    class: 'chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': title,
  },
  svg('title', {}, title),
  svg('g', {class: 'grid'}, grid),
  svg('path', {class: 'area', d: area}),
  svg('path', {class: 'line', d: line}),
  svg('g', {}, dots),
  svg('text', {class: 'axis', x: PAD.left, y: HEIGHT - 8}, formatTime(first.at_ms)),
  svg('text', {class: 'axis', x: WIDTH - PAD.right, y: HEIGHT - 8, 'text-anchor': 'end'},
    `${formatTime(last.at_ms)} · ${matches.length} ${matches.length === 1 ? 'match' : 'matches'}`),
  );
}
