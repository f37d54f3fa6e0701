// The widget's styles, scoped under .rw-root (inserted once per page).
export const CSS = `
.rw-root { font: 12px/1.4 system-ui, sans-serif; color: #222; display: grid; gap: 8px;
  grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); max-width: 1200px; }
.rw-root[data-rw-busy] { cursor: progress; }
.rw-root [hidden] { display: none !important; }
.rw-panel { border: 1px solid #ddd; border-radius: 6px; padding: 6px 8px; min-width: 0; overflow: auto; }
.rw-panel h4 { margin: 0 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: #555; }
.rw-tokens-view, .rw-interventions-view { grid-column: 1 / -1; }
.rw-token-line { max-height: 180px; overflow: auto; line-height: 1.9; }
.rw-token { padding: 1px 2px; margin: 0 1px; border-radius: 3px; cursor: pointer; white-space: pre; font-family: ui-monospace, monospace; }
.rw-token.rw-selected { outline: 2px solid #e67e22; }
.rw-token.rw-query { outline: 2px dashed #2c3e50; }
.rw-token.rw-special { color: #8e44ad; font-style: italic; }
.rw-legend, .rw-caption, .rw-info { color: #666; margin: 2px 0; }
.rw-row { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin-bottom: 4px; }
.rw-split { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
.rw-head-grid { display: grid; gap: 2px; align-items: center; }
.rw-axis { color: #888; font-size: 11px; text-align: center; }
.rw-head { position: relative; padding: 1px; border: 2px solid transparent; background: none; cursor: pointer; display: flex; flex-direction: column; align-items: center; }
.rw-head:hover { border-color: #aaa; }
.rw-head.rw-selected { border-color: #e67e22; }
.rw-head.rw-ablated canvas { opacity: .35; }
.rw-head.rw-ablated::after { content: "\\00d7"; position: absolute; top: -2px; right: 2px; color: #c0392b; font-weight: bold; font-size: 16px; }
.rw-thumb { width: 36px; height: 36px; image-rendering: pixelated; border: 1px solid #eee; }
.rw-score { font-size: 10px; color: #444; }
.rw-plot { display: grid; grid-template-columns: auto 320px; grid-template-rows: auto 320px; }
.rw-pattern { width: 320px; height: 320px; image-rendering: pixelated; border: 1px solid #ccc; cursor: crosshair; box-sizing: border-box; }
.rw-query-labels { display: flex; flex-direction: column; align-items: flex-end; }
.rw-key-labels { display: flex; flex-direction: row; align-items: flex-end; }
.rw-query-labels .rw-label { flex: 1 1 0; min-height: 0; display: flex; align-items: center; padding-right: 3px; }
.rw-key-labels .rw-label { flex: 1 1 0; min-width: 0; writing-mode: vertical-rl; transform: rotate(180deg); padding-top: 3px; display: flex; align-items: center; }
.rw-label { font: 10px ui-monospace, monospace; white-space: pre; overflow: hidden; color: #444; cursor: pointer; max-width: 90px; max-height: 90px; }
.rw-small { font-size: 11px; padding: 1px 6px; cursor: pointer; }
.rw-layer.rw-selected, .rw-neuron.rw-selected { outline: 2px solid #e67e22; }
.rw-neuron-list { display: flex; flex-wrap: wrap; gap: 3px; }
.rw-neuron { font-family: ui-monospace, monospace; font-size: 11px; cursor: pointer; white-space: pre; }
.rw-neuron.rw-ablated { text-decoration: line-through; color: #c0392b; }
.rw-feature.rw-steered { background: #e8f4ea; border-color: #1e7e34; }
.rw-steer { width: 160px; }
.rw-context { font-family: ui-monospace, monospace; font-size: 11px; margin: 1px 0; white-space: pre-wrap; }
.rw-ctx-token { padding: 0 1px; margin-right: 3px; border-radius: 2px; }
.rw-lens { border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 11px; }
.rw-lens td, .rw-lens th { padding: 1px 4px; white-space: pre; cursor: pointer; max-width: 80px; overflow: hidden; text-overflow: ellipsis; }
.rw-lens th.rw-selected, .rw-lens td.rw-selected { outline: 2px solid #e67e22; }
.rw-columns { display: flex; gap: 16px; flex-wrap: wrap; }
.rw-pred-table { border-collapse: collapse; font-size: 12px; }
.rw-pred-table td, .rw-pred-table th { padding: 1px 6px; text-align: left; }
.rw-pred-token { font-family: ui-monospace, monospace; white-space: pre; }
.rw-num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.rw-bar { display: inline-block; height: 8px; background: #7fa7d9; margin-right: 4px; vertical-align: middle; }
.rw-up { color: #1e7e34; } .rw-down { color: #c0392b; }
.rw-iv-list { list-style: none; padding: 0; margin: 2px 0; display: flex; gap: 6px; flex-wrap: wrap; }
.rw-iv { background: #fdecea; border: 1px solid #f5c6cb; border-radius: 10px; padding: 0 4px 0 8px; }
.rw-empty { color: #888; }
.rw-busy { color: #e67e22; }
.rw-error { color: #fff; background: #c0392b; padding: 2px 6px; border-radius: 4px; white-space: pre-wrap; }
.rw-warning { color: #6b4400; background: #fff4d6; border: 1px solid #f0c36d; padding: 2px 6px; border-radius: 4px; margin-bottom: 4px; }
.rw-attribution-view, .rw-patching-view { grid-column: 1 / -1; }
.rw-dla-cell { font: 10px ui-monospace, monospace; border: 1px solid transparent; padding: 2px 3px; cursor: pointer; }
.rw-dla-cell.rw-selected { outline: 2px solid #e67e22; }
.rw-target, .rw-foil { width: 80px; }
.rw-patch-table { border-collapse: collapse; font: 10px ui-monospace, monospace; }
.rw-patch-cell { padding: 1px 3px; cursor: pointer; text-align: right; }
.rw-patch-table th { max-width: 60px; overflow: hidden; white-space: pre; }
`;
