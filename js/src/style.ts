// The widget's shared styles, scoped under .rw-root; each view's own styles are its module's `css`, added after
// these (widget.ts). Styles (inserted once per page, or per shadow root). Colours come from
// JupyterLab's theme variables (Notebook 7 has them too) with light fallbacks for other hosts; the widget reads
// the resolved background to pick its heatmap palette and sets data-rw-theme="dark" on a dark one (layout.ts).
// Every text colour is chosen to read at 4.5:1 or more on the background it sits on, in both themes.
export const CSS = `
.rw-root {
  --rw-fg: var(--jp-ui-font-color1, #1a1a1a);
  --rw-muted: var(--jp-ui-font-color2, #595959);
  --rw-bg: var(--jp-layout-color1, #ffffff);
  --rw-bg-alt: var(--jp-layout-color2, #eeeeee);
  --rw-border: var(--jp-border-color2, #d6d6d6);
  --rw-button-bg: var(--jp-layout-color1, #ffffff);
  --rw-button-border: var(--jp-border-color1, #9e9e9e);
  --rw-mono: var(--jp-code-font-family, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace);
  --rw-select: #b34d00;
  --rw-focus: var(--jp-brand-color1, #1565c0);
  --rw-up: #17692c;
  --rw-down: #b3261e;
  --rw-ablated: #b3261e;
  --rw-chip-bg: #fdecea;
  --rw-chip-border: #f0b4b0;
  --rw-steer-bg: #e6f4ea;
  --rw-bar: #c9dcf5;
  --rw-warn-fg: #5c3b00;
  --rw-warn-bg: #fff4d6;
  --rw-warn-border: #e0b050;
  --rw-busy: #8a3a00;
  font: 12px/1.4 var(--jp-ui-font-family, system-ui, -apple-system, "Segoe UI", sans-serif);
  color: var(--rw-fg); background: var(--rw-bg);
  display: flex; flex-direction: column; gap: 8px; max-width: 1600px; box-sizing: border-box;
}
.rw-root[data-rw-theme="dark"] {
  --rw-select: #ffa24d;
  --rw-focus: #7ab4ff;
  --rw-up: #7fdc98;
  --rw-down: #ff9c91;
  --rw-ablated: #ff8a7d;
  --rw-chip-bg: #4a2320;
  --rw-chip-border: #8c4039;
  --rw-steer-bg: #1f3d29;
  --rw-bar: #2b4a7a;
  --rw-warn-fg: #ffe3a3;
  --rw-warn-bg: #3d2e0a;
  --rw-warn-border: #8a6a20;
  --rw-busy: #ffb874;
}
.rw-root *, .rw-root *::before, .rw-root *::after { box-sizing: border-box; }
.rw-root [hidden] { display: none !important; }
.rw-root[data-rw-busy] { cursor: progress; }
.rw-root :focus-visible { outline: 2px solid var(--rw-focus); outline-offset: 1px; }
.rw-root button, .rw-root select, .rw-root input { font: inherit; color: var(--rw-fg); }
.rw-root button, .rw-root select { background: var(--rw-button-bg); border: 1px solid var(--rw-button-border); border-radius: 4px; }
.rw-root input:not([type="range"]):not([type="checkbox"]) { background: var(--rw-bg); border: 1px solid var(--rw-button-border);
  border-radius: 4px; padding: 1px 4px; }
.rw-root button:not(:disabled) { cursor: pointer; }
.rw-root button:not(:disabled):hover { border-color: var(--rw-fg); }
.rw-root button:disabled { opacity: .55; }

/* layout: top bar, the main column (what you click) and the side column (what a click changes) */
.rw-top { display: flex; flex-direction: column; gap: 8px; }
.rw-cols { display: grid; gap: 8px; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); align-items: start; }
.rw-cols.rw-one { grid-template-columns: minmax(0, 1fr); }
.rw-main, .rw-side { display: flex; flex-direction: column; gap: 8px; min-width: 0; }
.rw-root[data-rw-layout="wide"] .rw-side { position: sticky; top: 0; z-index: 1; }
.rw-root[data-rw-layout="narrow"] .rw-cols { display: flex; flex-direction: column; align-items: stretch; }
.rw-root[data-rw-layout="narrow"] .rw-main, .rw-root[data-rw-layout="narrow"] .rw-side { display: contents; }
.rw-root[data-rw-layout="narrow"] .rw-panel { order: 9; } /* each view's css orders its own panel before this */

.rw-panel { border: 1px solid var(--rw-border); border-radius: 6px; padding: 6px 8px; min-width: 0; background: var(--rw-bg); }
.rw-panel h4 { margin: 0 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--rw-muted);
  display: flex; gap: 8px; align-items: baseline; }
.rw-status { text-transform: none; letter-spacing: 0; font-weight: normal; color: var(--rw-busy); }
.rw-body { transition: opacity .15s ease .15s; }
.rw-root[data-rw-busy] .rw-panel[data-rw-run] .rw-body, .rw-panel[data-rw-loading] .rw-body { opacity: .6; }
[data-rw-pending] { animation: rw-pulse 0.9s ease-in-out infinite; }
@keyframes rw-pulse { 50% { box-shadow: 0 0 0 3px var(--rw-select); } }
.rw-legend, .rw-caption, .rw-info, .rw-hint { color: var(--rw-muted); margin: 2px 0; }
.rw-hint kbd { font: 11px var(--rw-mono); border: 1px solid var(--rw-border); border-radius: 3px; padding: 0 3px; color: var(--rw-fg); }
.rw-row { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin-bottom: 4px; }
.rw-field { display: inline-flex; gap: 4px; align-items: center; color: var(--rw-muted); }
.rw-field select { color: var(--rw-fg); }
.rw-split { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
.rw-small { font-size: 11px; padding: 1px 6px; }
.rw-ablate-button { font-weight: 600; }
.rw-ablate-button[aria-pressed="true"] { border-color: var(--rw-ablated); color: var(--rw-ablated); }

/* colour bars */
.rw-colourbar { display: inline-flex; align-items: center; gap: 4px; color: var(--rw-muted); font-size: 11px; flex-wrap: wrap; }
.rw-colourbar-bar { display: inline-block; width: 90px; height: 9px; border: 1px solid var(--rw-border); border-radius: 2px; }
.rw-colourbar-what { color: var(--rw-muted); }
.rw-colourbar-scale { display: inline-flex; flex-direction: column; align-items: center; line-height: 1; }

/* token lines (tokens, probes) */
.rw-token-line { max-height: 180px; overflow: auto; display: flex; flex-wrap: wrap; gap: 2px 3px; padding: 2px; }
.rw-token { padding: 0 3px; border-radius: 3px; cursor: pointer; white-space: pre; font-family: var(--rw-mono);
  line-height: 1.7; max-width: 100%; overflow: hidden; text-overflow: ellipsis; }
.rw-token.rw-selected { outline: 2px solid var(--rw-select); outline-offset: 0; }
.rw-token.rw-query { outline: 2px dashed var(--rw-fg); }
.rw-token.rw-lassoed { box-shadow: inset 0 -3px 0 var(--rw-select); }
.rw-token.rw-special { font-style: italic; }
.rw-token.rw-bos { border: 1px dotted var(--rw-muted); }

/* head grids and heads (attention, attribution, neurons, features) */
.rw-head-grid { display: grid; gap: 1px; align-items: center; --rw-thumb: 36px; }
.rw-axis { color: var(--rw-muted); font-size: 11px; text-align: center; }
.rw-head.rw-ablated canvas { opacity: .3; }
.rw-head.rw-ablated::after { content: "\\00d7"; position: absolute; top: -4px; right: 1px; color: var(--rw-ablated); font-weight: bold; font-size: 15px; }
.rw-head-grid[data-rw-scores="off"] .rw-score { display: none; }
.rw-selected-head { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 4px 0; }

/* neurons, features, probes */
.rw-layer.rw-selected, .rw-neuron.rw-selected { outline: 2px solid var(--rw-select); }
.rw-neuron-list { display: flex; flex-wrap: wrap; gap: 3px; }
.rw-root button.rw-neuron { font-family: var(--rw-mono); font-size: 11px; white-space: pre; }
.rw-root button.rw-neuron.rw-ablated { text-decoration: line-through; color: var(--rw-ablated); border-color: var(--rw-ablated); }
.rw-root button.rw-feature.rw-steered { background: var(--rw-steer-bg); }
.rw-steer { width: 150px; }

/* columns and numbers (predictions, continuation, attribution, projector) */
.rw-columns { display: flex; gap: 14px; flex-wrap: wrap; align-items: flex-start; }
.rw-num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }`;
