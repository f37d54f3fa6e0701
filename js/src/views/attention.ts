// Attention: a layer x head grid of thumbnails with head scores; the selected head's pattern as a
// canvas heatmap (pooled overview with zoom for long prompts); hovering a query shows where it attends.
import { at, type Tensor } from "../codec";
import { maxOf, paintMatrix } from "../colour";
import { h, panel, showToken } from "../dom";
import type { Store } from "../store";

/** Token labels along the pattern's axes up to this many rows. */
const MAX_LABELS = 48;

const LABELS: Record<string, string> = {
  previous_token: "previous token",
  induction: "induction",
  duplicate_token: "duplicate token",
  first_token: "first token",
};

/** Which [q0, q1) x [k0, k1) window a pattern reply covers, and the pooled size of each pixel. */
export interface PatternView {
  values: Tensor;
  window: [number, number, number, number];
}

/** The query and key under pixel (row, col) of a pattern reply (pooled replies cover several tokens per pixel). */
export function cellAt(view: PatternView, row: number, col: number): { query: number; key: number } {
  const [q0, q1, k0, k1] = view.window;
  const [rows, cols] = view.values.shape;
  return {
    query: Math.min(q1 - 1, q0 + Math.floor((row * (q1 - q0)) / rows)),
    key: Math.min(k1 - 1, k0 + Math.floor((col * (k1 - k0)) / cols)),
  };
}

/** The attention row of `query` over every key position, as far as the reply shows it (0 outside). */
export function attentionRow(view: PatternView, query: number, nTokens: number): Float32Array | null {
  const [q0, q1, k0, k1] = view.window;
  if (query < q0 || query >= q1) return null;
  const [rows, cols] = view.values.shape;
  const row = Math.min(rows - 1, Math.floor(((query - q0) * rows) / (q1 - q0)));
  const out = new Float32Array(nTokens);
  for (let k = k0; k < k1; k++) out[k] = at(view.values, row, Math.min(cols - 1, Math.floor(((k - k0) * cols) / (k1 - k0))));
  return out;
}

export function mountAttention(el: HTMLElement, store: Store): void {
  const { n_layers, n_heads, n_tokens, max_side = 512 } = store.shape;
  const { root, body } = panel("Attention", "rw-attention-view");
  el.appendChild(root);

  const picker = h("select", { class: "rw-score-picker", title: "head score shown under each thumbnail" });
  for (const [value, label] of Object.entries(LABELS)) {
    const option = h("option", { text: label });
    option.value = value;
    picker.appendChild(option);
  }
  picker.value = "induction";
  const grid = h("div", { class: "rw-head-grid" });
  grid.style.gridTemplateColumns = `auto repeat(${n_heads}, auto)`;
  const cells: HTMLButtonElement[][] = [];
  grid.appendChild(h("span"));
  for (let head = 0; head < n_heads; head++) grid.appendChild(h("span", { class: "rw-axis", text: `H${head}` }));
  for (let layer = 0; layer < n_layers; layer++) {
    grid.appendChild(h("span", { class: "rw-axis", text: `L${layer}` }));
    cells.push([]);
    for (let head = 0; head < n_heads; head++) {
      const cell = h("button", { class: "rw-head", data: { rwHead: `${layer}.${head}`, rwLayer: layer } }, [
        h("canvas", { class: "rw-thumb" }),
        h("span", { class: "rw-score" }),
      ]);
      cells[layer].push(cell);
      grid.appendChild(cell);
    }
  }

  const title = h("div", { class: "rw-caption" });
  const canvas = h("canvas", { class: "rw-pattern", data: { rwPattern: "" } });
  const keyLabels = h("div", { class: "rw-key-labels" });
  const queryLabels = h("div", { class: "rw-query-labels" });
  const plot = h("div", { class: "rw-plot" }, [h("span"), keyLabels, queryLabels, canvas]);
  const info = h("div", { class: "rw-info", text: "hover the pattern: query \u2192 key" });
  const reset = h("button", { class: "rw-small", text: "whole pattern" });
  reset.hidden = true;
  const detail = h("div", { class: "rw-detail" }, [title, plot, info, reset]);
  body.append(h("div", { class: "rw-row" }, [h("label", { text: "score " }, [picker])]), h("div", { class: "rw-split" }, [grid, detail]));

  let scores: Tensor | null = null;
  let scoreNames: string[] = [];
  let view: PatternView | null = null;
  let window: [number, number, number, number] | null = null;

  const paintGrid = () => {
    const sel = store.selection;
    const ablated = new Set(store.interventions.filter((iv) => iv.type === "ablate" && iv.head != null).map((iv) => `${iv.layer}.${iv.head}`));
    const which = scoreNames.indexOf(picker.value);
    cells.forEach((row, layer) =>
      row.forEach((cell, head) => {
        cell.classList.toggle("rw-selected", layer === sel.layer && head === sel.head);
        cell.classList.toggle("rw-ablated", ablated.has(`${layer}.${head}`));
        if (scores && which >= 0) {
          const parts = scoreNames.map((name, i) => `${LABELS[name] ?? name} ${at(scores!, i, layer, head).toFixed(2)}`);
          cell.title = `head ${layer}.${head}${ablated.has(`${layer}.${head}`) ? " (ablated)" : ""}\n${parts.join("\n")}`;
          (cell.lastChild as HTMLElement).textContent = at(scores, which, layer, head).toFixed(2);
        }
      }),
    );
  };

  const fetchOverview = async () => {
    const reply = await store.request("overview").catch(() => null);
    if (!reply) return;
    const thumbs = reply.data.thumbs as Tensor;
    scores = reply.data.scores as Tensor;
    scoreNames = reply.data.score_names as string[];
    const [, , rows, cols] = thumbs.shape;
    cells.forEach((row, layer) =>
      row.forEach((cell, head) => {
        const offset = (layer * n_heads + head) * rows * cols;
        const values = thumbs.data.subarray(offset, offset + rows * cols);
        paintMatrix(cell.firstChild as HTMLCanvasElement, values, rows, cols, maxOf(values, 1));
      }),
    );
    paintGrid();
  };

  const fetchPattern = async () => {
    const { layer, head } = store.selection;
    const args: Record<string, unknown> = { layer, head };
    if (window) args.window = window;
    const reply = await store.request("pattern", args).catch(() => null);
    if (!reply) return;
    const values = reply.data.pattern as Tensor;
    view = { values, window: reply.data.window };
    const [rows, cols] = values.shape;
    const scale = maxOf(values.data);
    paintMatrix(canvas, values.data, rows, cols, scale);
    const [q0, q1, k0, k1] = view.window;
    labels(q0, k0, rows, cols, !reply.data.pooled);
    const part = window ? `queries ${q0}-${q1 - 1}, keys ${k0}-${k1 - 1}` : `${n_tokens} x ${n_tokens}`;
    title.textContent = `head ${layer}.${head}: ${part}${reply.data.pooled ? " (pooled; click to zoom)" : ""}, darkest = ${scale.toFixed(2)}`;
    canvas.dataset.rwPattern = `${layer}.${head}`;
    reset.hidden = window === null;
  };

  /** Query labels down the left, key labels along the top, where there is room for one per row. */
  const labels = (q0: number, k0: number, rows: number, cols: number, exact: boolean) => {
    const tokens = store.tokens;
    const show = exact && rows <= MAX_LABELS && cols <= MAX_LABELS;
    const make = (start: number, count: number, axis: string) =>
      show
        ? Array.from({ length: count }, (_, i) =>
            h("span", { class: "rw-label", text: showToken(tokens[start + i] ?? ""), title: `${axis} ${start + i}`, data: { rwToken: start + i } }),
          )
        : [];
    queryLabels.replaceChildren(...make(q0, rows, "query"));
    keyLabels.replaceChildren(...make(k0, cols, "key"));
  };
  const clickLabel = (event: Event) => {
    const label = (event.target as HTMLElement).closest("[data-rw-token]") as HTMLElement | null;
    if (label) store.select({ token: Number(label.dataset.rwToken) });
  };
  queryLabels.addEventListener("click", clickLabel);
  keyLabels.addEventListener("click", clickLabel);

  const pixel = (event: MouseEvent) => {
    const box = canvas.getBoundingClientRect();
    if (!view || box.width === 0) return null;
    const [rows, cols] = view.values.shape;
    const row = Math.floor(((event.clientY - box.top) / box.height) * rows);
    const col = Math.floor(((event.clientX - box.left) / box.width) * cols);
    if (row < 0 || col < 0 || row >= rows || col >= cols) return null;
    return { row, col, ...cellAt(view, row, col) };
  };

  grid.addEventListener("click", (event) => {
    const cell = (event.target as HTMLElement).closest("[data-rw-head]") as HTMLElement | null;
    if (!cell) return;
    const [layer, head] = cell.dataset.rwHead!.split(".").map(Number);
    store.select({ layer, head });
    if (store.editable && store.action === "ablate") store.toggle({ layer, head });
  });
  picker.addEventListener("change", paintGrid);
  canvas.addEventListener("mousemove", (event) => {
    const p = pixel(event);
    if (!p || !view) return;
    const tokens = store.tokens;
    const value = at(view.values, p.row, p.col);
    info.textContent = `query ${p.query} "${showToken(tokens[p.query] ?? "")}" \u2192 key ${p.key} "${showToken(tokens[p.key] ?? "")}": ${value.toFixed(3)}`;
    const values = attentionRow(view, p.query, n_tokens);
    if (values) store.emit("attend-row", { values, query: p.query });
  });
  canvas.addEventListener("mouseleave", () => store.emit("attend-row", null));
  canvas.addEventListener("click", (event) => {
    const p = pixel(event);
    if (!p || n_tokens <= max_side) return;
    const side = Math.min(256, max_side);
    const start = (i: number) => Math.max(0, Math.min(n_tokens - side, i - side / 2));
    const q0 = start(p.query);
    const k0 = start(p.key);
    window = [q0, q0 + side, k0, k0 + side];
    void fetchPattern();
  });
  reset.addEventListener("click", () => {
    window = null;
    void fetchPattern();
  });
  store.on("hover-query", (query: number | null) => {
    const values = query === null || !view ? null : attentionRow(view, query, n_tokens);
    store.emit("attend-row", values ? { values, query } : null);
  });

  let head = `${store.selection.layer}.${store.selection.head}`;
  store.on("selection", () => {
    const now = `${store.selection.layer}.${store.selection.head}`;
    if (now !== head) {
      head = now;
      window = null;
      void fetchPattern();
    }
    paintGrid();
  });
  store.on("intervention_list", paintGrid);
  store.on("generation", () => {
    void fetchOverview();
    void fetchPattern();
  });
  void fetchOverview();
  void fetchPattern();
}
