// The widget's styles, scoped under .rw-root (inserted once per page, or per shadow root). Colours come from
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
.rw-root[data-rw-layout="narrow"] .rw-panel { order: 9; }
.rw-root[data-rw-layout="narrow"] .rw-attention-view { order: 1; }
.rw-root[data-rw-layout="narrow"] .rw-predictions-view { order: 2; }
.rw-root[data-rw-layout="narrow"] .rw-lens-view { order: 3; }
.rw-root[data-rw-layout="narrow"] .rw-neurons-view { order: 4; }
.rw-root[data-rw-layout="narrow"] .rw-features-view { order: 5; }
.rw-root[data-rw-layout="narrow"] .rw-probes-view { order: 6; }
.rw-root[data-rw-layout="narrow"] .rw-attribution-view { order: 7; }
.rw-root[data-rw-layout="narrow"] .rw-patching-view { order: 8; }

.rw-panel { border: 1px solid var(--rw-border); border-radius: 6px; padding: 6px 8px; min-width: 0; background: var(--rw-bg); }
.rw-panel h4 { margin: 0 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--rw-muted);
  display: flex; gap: 8px; align-items: baseline; }
.rw-status { text-transform: none; letter-spacing: 0; font-weight: normal; color: var(--rw-busy); }
.rw-body { transition: opacity .15s ease .15s; }
.rw-root[data-rw-busy] .rw-panel[data-rw-run] .rw-body, .rw-panel[data-rw-loading] .rw-body { opacity: .6; }
[data-rw-pending] { animation: rw-pulse 0.9s ease-in-out infinite; }
@keyframes rw-pulse { 50% { box-shadow: 0 0 0 3px var(--rw-select); } }
.rw-legend, .rw-caption, .rw-info, .rw-hint { color: var(--rw-muted); margin: 2px 0; }
.rw-swatch { display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%; margin: 0 0.3em 0 0.6em; vertical-align: baseline; }
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

/* tokens */
.rw-token-line { max-height: 180px; overflow: auto; display: flex; flex-wrap: wrap; gap: 2px 3px; padding: 2px; }
.rw-token { padding: 0 3px; border-radius: 3px; cursor: pointer; white-space: pre; font-family: var(--rw-mono);
  line-height: 1.7; max-width: 100%; overflow: hidden; text-overflow: ellipsis; }
.rw-token.rw-selected { outline: 2px solid var(--rw-select); outline-offset: 0; }
.rw-token.rw-query { outline: 2px dashed var(--rw-fg); }
.rw-token.rw-lassoed { box-shadow: inset 0 -3px 0 var(--rw-select); }
.rw-token.rw-special { font-style: italic; }
.rw-token.rw-bos { border: 1px dotted var(--rw-muted); }

/* attention */
.rw-head-grid { display: grid; gap: 1px; align-items: center; --rw-thumb: 36px; }
.rw-axis { color: var(--rw-muted); font-size: 11px; text-align: center; }
.rw-root button.rw-head { position: relative; padding: 1px; border: 2px solid transparent; background: none; display: flex;
  flex-direction: column; align-items: center; border-radius: 3px; }
.rw-root button.rw-head:hover { border-color: var(--rw-muted); }
.rw-root button.rw-head.rw-selected { border-color: var(--rw-select); }
.rw-head.rw-ablated canvas { opacity: .3; }
.rw-head.rw-ablated::after { content: "\\00d7"; position: absolute; top: -4px; right: 1px; color: var(--rw-ablated); font-weight: bold; font-size: 15px; }
.rw-thumb { width: var(--rw-thumb); height: var(--rw-thumb); image-rendering: pixelated; border: 1px solid var(--rw-border); display: block; }
.rw-score { font-size: 10px; color: var(--rw-fg); font-variant-numeric: tabular-nums; }
.rw-head-grid[data-rw-scores="off"] .rw-score { display: none; }
.rw-selected-head { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 4px 0; }
.rw-plot { display: grid; grid-template-columns: auto var(--rw-pattern, 320px); grid-template-rows: auto var(--rw-pattern, 320px); }
.rw-pattern-box { position: relative; width: var(--rw-pattern, 320px); height: var(--rw-pattern, 320px); }
.rw-pattern { width: 100%; height: 100%; image-rendering: pixelated; border: 1px solid var(--rw-border); cursor: crosshair; display: block; }
.rw-pattern-cursor { position: absolute; pointer-events: none; outline: 2px solid var(--rw-select); }
.rw-pattern-row { position: absolute; left: 0; right: 0; pointer-events: none; border-top: 1px dashed var(--rw-select); border-bottom: 1px dashed var(--rw-select); }
.rw-query-labels { display: flex; flex-direction: column; align-items: flex-end; }
.rw-key-labels { display: flex; flex-direction: row; align-items: flex-end; }
.rw-query-labels .rw-label { flex: 1 1 0; min-height: 0; display: flex; align-items: center; padding-right: 3px; }
.rw-key-labels .rw-label { flex: 1 1 0; min-width: 0; writing-mode: vertical-rl; transform: rotate(180deg); padding-top: 3px; display: flex; align-items: center; }
.rw-label { font: 10px var(--rw-mono); white-space: pre; overflow: hidden; color: var(--rw-fg); cursor: pointer; max-width: 90px; max-height: 90px; }
.rw-label.rw-selected { color: var(--rw-select); font-weight: bold; }

/* neurons, features, probes */
.rw-layer.rw-selected, .rw-neuron.rw-selected { outline: 2px solid var(--rw-select); }
.rw-neuron-list { display: flex; flex-wrap: wrap; gap: 3px; }
.rw-root button.rw-neuron { font-family: var(--rw-mono); font-size: 11px; white-space: pre; }
.rw-root button.rw-neuron.rw-ablated { text-decoration: line-through; color: var(--rw-ablated); border-color: var(--rw-ablated); }
.rw-root button.rw-feature.rw-steered { background: var(--rw-steer-bg); }
.rw-steer { width: 150px; }
.rw-context { font-family: var(--rw-mono); font-size: 11px; margin: 1px 0; white-space: pre-wrap; }
.rw-ctx-token { padding: 0 1px; margin-right: 3px; border-radius: 2px; }

/* logit lens */
/* at most ~16 layers high: a 30-layer lens scrolls (its token row stays on top) instead of pushing the predictions
   below the screen */
.rw-lens-scroll { overflow: auto; max-width: 100%; max-height: 340px; scroll-snap-type: x proximity; }
.rw-lens th.rw-lens-token { position: sticky; top: 0; z-index: 1; }
.rw-lens td, .rw-lens th.rw-lens-token { scroll-snap-align: start; }
.rw-lens { border-collapse: separate; border-spacing: 0; font-family: var(--rw-mono); font-size: 11px; }
.rw-lens td, .rw-lens th { padding: 1px 4px; white-space: pre; cursor: pointer; max-width: 78px; overflow: hidden; text-overflow: ellipsis; }
.rw-lens th { font-weight: 600; color: var(--rw-fg); background: var(--rw-bg); }
.rw-lens th.rw-lens-layer { position: sticky; left: 0; z-index: 1; text-align: right; }
.rw-lens tr:first-child th.rw-lens-layer { top: 0; z-index: 2; }
.rw-lens th.rw-selected, .rw-lens td.rw-selected { outline: 2px solid var(--rw-select); outline-offset: -2px; }
.rw-lens td.rw-changed { box-shadow: inset 0 -3px 0 var(--rw-ablated); }
.rw-toggle { display: inline-flex; border: 1px solid var(--rw-button-border); border-radius: 4px; overflow: hidden; }
.rw-root .rw-toggle button { border: none; border-radius: 0; font-size: 11px; padding: 1px 6px; }
.rw-root .rw-toggle button[aria-pressed="true"] { background: var(--rw-fg); color: var(--rw-bg); }

/* predictions */
.rw-columns { display: flex; gap: 14px; flex-wrap: wrap; align-items: flex-start; }
.rw-pred-table { border-collapse: collapse; font-size: 12px; }
.rw-pred-table td, .rw-pred-table th { padding: 1px 5px; text-align: left; }
.rw-pred-table th { color: var(--rw-fg); font-weight: 600; }
.rw-pred-token { font-family: var(--rw-mono); white-space: pre; max-width: 90px; overflow: hidden; text-overflow: ellipsis; }
.rw-num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.rw-p { min-width: 56px; }
.rw-up { color: var(--rw-up); } .rw-down { color: var(--rw-down); }
.rw-more { color: var(--rw-muted); font-size: 11px; }

/* continuation */
.rw-gen-column { flex: 1 1 240px; min-width: 0; }
.rw-gen-column[data-rw-stale] .rw-gen-text { opacity: 0.45; }
.rw-gen-column[data-rw-stale] .rw-gen-head::after { content: " (stale: regenerating\u2026)"; color: var(--rw-muted); font-weight: normal; }
.rw-gen-head { font-weight: 600; color: var(--rw-fg); }
.rw-gen-text { font-family: var(--rw-mono); font-size: 12px; line-height: 1.9; white-space: pre-wrap; }
.rw-gen-token { padding: 1px 1px; margin-right: 3px; border-radius: 2px; cursor: pointer; }
.rw-gen-token.rw-selected { outline: 2px solid var(--rw-select); }
.rw-gen-bar { display: flex; gap: 8px; align-items: center; }

/* interventions */
.rw-iv-list { list-style: none; padding: 0; margin: 2px 0; display: flex; gap: 6px; flex-wrap: wrap; }
.rw-iv { background: var(--rw-chip-bg); border: 1px solid var(--rw-chip-border); border-radius: 10px; padding: 0 2px 0 8px;
  display: inline-flex; align-items: center; gap: 4px; color: var(--rw-fg); }
.rw-root .rw-iv button.rw-remove { border: none; background: none; border-radius: 8px; padding: 0 5px; font-weight: bold; color: var(--rw-fg); }
.rw-root .rw-iv button.rw-remove:hover { background: var(--rw-chip-border); }
.rw-empty { color: var(--rw-muted); }
.rw-busy { color: var(--rw-busy); }
.rw-error { color: #fff; background: #b3261e; padding: 2px 6px; border-radius: 4px; white-space: pre-wrap; display: flex; gap: 8px; align-items: flex-start; }
.rw-root .rw-error button { background: none; border: 1px solid #fff; color: #fff; padding: 0 5px; }
.rw-warning { color: var(--rw-warn-fg); background: var(--rw-warn-bg); border: 1px solid var(--rw-warn-border); padding: 2px 6px; border-radius: 4px; margin-bottom: 4px; }
.rw-attribution-view, .rw-patching-view { grid-column: 1 / -1; }
.rw-dla-cell { font: 10px var(--rw-mono); border: 1px solid transparent; padding: 2px 3px; cursor: pointer; color: var(--rw-fg); }
.rw-dla-cell.rw-selected { outline: 2px solid var(--rw-select); }
.rw-target, .rw-foil { width: 80px; }
.rw-patch-table { border-collapse: collapse; font: 10px var(--rw-mono); }
.rw-patch-cell { padding: 1px 3px; cursor: pointer; text-align: right; }
.rw-patch-table th { max-width: 60px; overflow: hidden; white-space: pre; color: var(--rw-fg); }
`;
