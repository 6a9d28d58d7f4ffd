// Charts for the report pages: a canvas with an accessible label, drawn by the vendored Chart.js
// (loaded by index.html as a classic script, so it is `window.Chart`). A page drawn again replaces
// the canvas's old chart rather than stacking a second one on it.
import { h } from './dom.js';

/** Colours for the datasets, in order; the same measure keeps its colour on every page. */
export const COLOURS = ['#3b6ea5', '#d08a2c', '#a33b3b', '#4f8f5b', '#7a5ea8', '#5a6b7d', '#c0587e', '#2d9a9a'];

/** A canvas for one chart; `label` says in words what it shows (the canvas itself has no text). */
export function chartCanvas(testid, label, width = 640, height = 280) {
  return h('canvas', { 'data-testid': testid, width, height, 'aria-label': label, role: 'img' });
}

/** Axes for counts: from zero, whole numbers only (a count of 1 is not drawn as 0.1 steps). */
export const COUNT_AXES = { y: { beginAtZero: true, ticks: { precision: 0 } } };

/** Draws `config` (a Chart.js configuration) on `canvas`; nothing when Chart.js did not load. */
export function drawChart(canvas, config) {
  const Chart = window.Chart;
  if (!Chart) return null;
  const old = Chart.getChart(canvas);
  if (old) old.destroy();
  return new Chart(canvas, {
    ...config,
    options: { animation: false, responsive: false, ...(config.options || {}) },
  });
}
