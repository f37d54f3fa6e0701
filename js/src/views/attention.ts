// Attention: a layer x head grid of thumbnails with head scores (sized to the panel), and the selected head's
// pattern as a canvas heatmap (pooled overview with zoom for long prompts). A click on a head selects it (its
// pattern shows); shift+click, or the ablate button beside its scores, toggles its ablation. Arrow keys move
// the selected head in the grid, and the query (the selected token) and a key cursor in the pattern. The top heads by
// the chosen score are outlined (dashed) and listed beside the picker; an entry selects its head.
import { at, type Tensor, topCells } from "../codec";
import { maxOf, paintMatrix } from "../colour";
import { topContexts } from "../contexts";
import { arrowStep, colourBar, h, labelled, onResize, panel, showToken, track, wantsIntervention } from "../dom";
import { thumbSize } from "../layout";
import { attentionRow, cellAt, defaultScore, pixelOf, type PatternView } from "../pattern";
import type { Store } from "../store";

/** Token labels along the pattern's axes up to this many rows. */
const MAX_LABELS = 48;
/** The pattern's side at most, in pixels (smaller when the panel is narrower). */
const PATTERN = 320;
/** The highest-scoring heads for the chosen score: outlined in the grid and listed beside the picker. */
export const TOP_HEADS = 5;

export const SCORE_LABELS: Record<string, string> = {
  previous_token: "previous token",
  induction: "induction",
  duplicate_token: "duplicate token",
  first_token: "first token",
};

export function mountAttention(el: HTMLElement, store: Store): void {
  const { n_layers, n_heads, n_tokens, max_side = 512 } = store.shape;
  const parts = panel("Attention", "rw-attention-view", store);
  const { root, body } = parts;
  el.appendChild(root);

  const picker = h("select", { class: "rw-score-picker", title: "head score shown under each thumbnail" });
  for (const [value, label] of Object.entries(SCORE_LABELS)) {
    const option = h("option", { text: label });
    option.value = value;
    picker.appendChild(option);
  }
  let picked = false; // the reader chose a score: keep it
  const grid = h("div", { class: "rw-head-grid", attrs: { role: "group", "aria-label": "attention heads: arrow keys move the selected head" } });
  grid.style.gridTemplateColumns = `auto repeat(${n_heads}, auto)`;
  const cells: HTMLButtonElement[][] = [];
  grid.appendChild(h("span"));
  for (let head = 0; head < n_heads; head++) grid.appendChild(h("span", { class: "rw-axis", text: `H${head}`, attrs: { "aria-hidden": "true" } }));
  for (let layer = 0; layer < n_layers; layer++) {
    grid.appendChild(h("span", { class: "rw-axis", text: `L${layer}`, attrs: { "aria-hidden": "true" } }));
    cells.push([]);
    for (let head = 0; head < n_heads; head++) {
      const cell = h("button", { class: "rw-head", data: { rwHead: `${layer}.${head}`, rwLayer: layer }, attrs: { tabindex: -1 } }, [
        h("canvas", { class: "rw-thumb", attrs: { "aria-hidden": "true" } }),
        h("span", { class: "rw-score", attrs: { "aria-hidden": "true" } }),
      ]);
      cells[layer].push(cell);
      grid.appendChild(cell);
    }
  }

  const headInfo = h("span", { class: "rw-caption", data: { rwHeadInfo: "" } });
  const ablate = h("button", { class: "rw-small rw-ablate-button", data: { rwAblate: "head" } });
  const selectedRow = h("div", { class: "rw-selected-head" }, [headInfo, ablate]);
  const title = h("div", { class: "rw-caption", data: { rwPatternTitle: "" } });
  const canvas = h("canvas", { class: "rw-pattern", data: { rwPattern: "" }, attrs: { tabindex: 0, role: "img" } });
  const cursor = h("div", { class: "rw-pattern-cursor" });
  const queryRow = h("div", { class: "rw-pattern-row" });
  cursor.hidden = queryRow.hidden = true;
  const box = h("div", { class: "rw-pattern-box" }, [canvas, queryRow, cursor]);
  const keyLabels = h("div", { class: "rw-key-labels", attrs: { "aria-hidden": "true" } });
  const queryLabels = h("div", { class: "rw-query-labels", attrs: { "aria-hidden": "true" } });
  const plot = h("div", { class: "rw-plot" }, [h("span", { class: "rw-axis", text: "query \u2193 key \u2192" }), keyLabels, queryLabels, box]);
  const info = h("div", { class: "rw-info", text: "hover the pattern (or focus it and use the arrow keys): query \u2192 key", attrs: { "aria-live": "polite" } });
  const key = h("span");
  const reset = h("button", { class: "rw-small", text: "whole pattern" });
  reset.hidden = true;
  const detail = h("div", { class: "rw-detail" }, [title, plot, h("div", { class: "rw-row" }, [key, reset]), info]);
  const hint = h("div", {
    class: "rw-hint",
    text: store.editable ? "click a head to see its pattern; shift+click (or the ablate button) ablates it" : "click a head to see its pattern",
  });
  const sampled = h("div", { class: "rw-caption", data: { rwSampled: "" } });
  sampled.hidden = true;
  const top = h("div", { class: "rw-row rw-top-heads", data: { rwTopHeads: "" }, attrs: { role: "group", "aria-label": "the top heads by the chosen score" } });
  const examples = h("div", { class: "rw-head-examples", attrs: { "aria-label": "the head's top contexts" } });
  body.append(h("div", { class: "rw-row" }, [labelled("score", picker), top]), hint, sampled, selectedRow, h("div", { class: "rw-split" }, [grid, detail]), examples);

  let overview: { thumbs: Tensor; scores: Tensor; names: string[] } | null = null;
  let view: PatternView | null = null;
  let scale = 1;
  let window: [number, number, number, number] | null = null;
  let keyCursor: number | null = null;

  const describe = (layer: number, head: number, ablated: boolean) => {
    const which = overview ? overview.names.indexOf(picker.value) : -1;
    const score = overview && which >= 0 ? `, ${SCORE_LABELS[picker.value] ?? picker.value} ${at(overview.scores, which, layer, head).toFixed(2)}` : "";
    return `head ${layer}.${head}${score}${ablated ? ", ablated" : ""}`;
  };

  const paintGrid = () => {
    const sel = store.selection;
    const which = overview ? overview.names.indexOf(picker.value) : -1;
    const best = overview && which >= 0 ? topCells(overview.scores, TOP_HEADS, which) : [];
    const ranks = new Map(best.map(([layer, head], i) => [`${layer}.${head}`, i + 1]));
    top.replaceChildren(
      ...(best.length ? [h("span", { class: "rw-axis", text: `top ${best.length}:` })] : []),
      ...best.map(([layer, head, value], i) =>
        h("button", { class: "rw-small rw-top-head", text: `${layer}.${head} ${value.toFixed(2)}`, data: { rwTopHead: `${layer}.${head}`, rwRank: i + 1 }, attrs: { "aria-label": `select head ${layer}.${head}, ranked ${i + 1}: ${SCORE_LABELS[picker.value] ?? picker.value} ${value.toFixed(2)}`, "aria-pressed": String(layer === sel.head_layer && head === sel.head) } }),
      ),
    );
    cells.forEach((row, layer) =>
      row.forEach((cell, head) => {
        const selected = layer === sel.head_layer && head === sel.head;
        const ablated = store.ablated({ layer, head });
        cell.classList.toggle("rw-selected", selected);
        cell.classList.toggle("rw-ablated", ablated);
        const rank = ranks.get(`${layer}.${head}`);
        cell.classList.toggle("rw-top", rank !== undefined);
        if (rank) cell.dataset.rwRank = String(rank);
        else delete cell.dataset.rwRank;
        cell.setAttribute("aria-pressed", String(selected));
        cell.tabIndex = selected ? 0 : -1;
        cell.setAttribute("aria-label", describe(layer, head, ablated));
        if (overview && which >= 0) {
          const all = overview.names.map((name, i) => `${SCORE_LABELS[name] ?? name} ${at(overview!.scores, i, layer, head).toFixed(2)}`);
          cell.title = `head ${layer}.${head}${ablated ? " (ablated)" : ""}\n${all.join("\n")}\nclick: select \u00b7 shift+click: ${ablated ? "restore" : "ablate"}`;
          (cell.lastChild as HTMLElement).textContent = at(overview.scores, which, layer, head).toFixed(2);
        }
      }),
    );
    const { head_layer: layer, head } = sel;
    const ablated = store.ablated({ layer, head });
    const all = overview ? overview.names.map((name, i) => `${SCORE_LABELS[name] ?? name} ${at(overview!.scores, i, layer, head).toFixed(2)}`) : [];
    headInfo.textContent = `head ${layer}.${head}${all.length ? `: ${all.join(", ")}` : ""}${ablated ? " (ablated)" : ""}`;
    ablate.hidden = !store.editable;
    ablate.textContent = ablated ? `restore head ${layer}.${head}` : `ablate head ${layer}.${head}`;
    ablate.setAttribute("aria-pressed", String(ablated));
    ablate.setAttribute("aria-label", ablated ? `restore head ${layer}.${head}: remove its ablation` : `ablate head ${layer}.${head}`);
  };

  const paintThumbs = () => {
    if (!overview) return;
    const [, , rows, cols] = overview.thumbs.shape;
    cells.forEach((row, layer) =>
      row.forEach((cell, head) => {
        const offset = (layer * n_heads + head) * rows * cols;
        const values = overview!.thumbs.data.subarray(offset, offset + rows * cols);
        paintMatrix(cell.firstChild as HTMLCanvasElement, values, rows, cols, maxOf(values, 1), store.palette);
      }),
    );
  };

  const fetchOverview = async () => {
    const reply = await track(parts, store.request("overview")).catch(() => null);
    if (!reply) return;
    overview = { thumbs: reply.data.thumbs as Tensor, scores: reply.data.scores as Tensor, names: reply.data.score_names as string[] };
    const stride = Number(reply.data.stride ?? 1);
    sampled.hidden = stride <= 1;
    sampled.textContent = stride > 1 ? `a long prompt: thumbnails and scores read every ${stride}th block of query rows (a head's own pattern is exact)` : "";
    if (!picked) picker.value = defaultScore(overview.scores, overview.names);
    paintThumbs();
    paintGrid();
  };

  /** The selected query's row and the key cursor drawn over the pattern. */
  const paintMarks = () => {
    if (!view) return;
    const [rows, cols] = view.values.shape;
    const query = store.selection.token;
    const mark = pixelOf(view, query, view.window[2]);
    queryRow.hidden = mark === null;
    if (mark) {
      queryRow.style.top = `${(100 * mark.row) / rows}%`;
      queryRow.style.height = `${100 / rows}%`;
    }
    const spot = keyCursor === null ? null : pixelOf(view, query, keyCursor);
    cursor.hidden = spot === null;
    if (spot) {
      cursor.style.top = `${(100 * spot.row) / rows}%`;
      cursor.style.left = `${(100 * spot.col) / cols}%`;
      cursor.style.width = `${100 / cols}%`;
      cursor.style.height = `${100 / rows}%`;
    }
    queryLabels.querySelectorAll<HTMLElement>("[data-rw-token]").forEach((l) => l.classList.toggle("rw-selected", Number(l.dataset.rwToken) === query));
  };

  const paintPattern = () => {
    if (!view) return;
    const [rows, cols] = view.values.shape;
    paintMatrix(canvas, view.values.data, rows, cols, scale, store.palette);
    key.replaceChildren(colourBar(store.palette, "sequential", "0", scale.toFixed(2), "attention"));
    paintMarks();
  };

  const fetchPattern = async () => {
    const { head_layer: layer, head } = store.selection;
    const args: Record<string, unknown> = { layer, head };
    if (window) args.window = window;
    const reply = await track(parts, store.request("pattern", args)).catch(() => null);
    if (!reply) return;
    const values = reply.data.pattern as Tensor;
    view = { values, window: reply.data.window };
    scale = maxOf(values.data);
    const [rows, cols] = values.shape;
    const [q0, q1, k0, k1] = view.window;
    labels(q0, k0, rows, cols, !reply.data.pooled);
    paintPattern();
    const part = window ? `queries ${q0}-${q1 - 1}, keys ${k0}-${k1 - 1}` : `${n_tokens} x ${n_tokens}`;
    title.textContent = `pattern of head ${layer}.${head}: ${part}${reply.data.pooled ? " (pooled; click to zoom)" : ""}`;
    canvas.dataset.rwPattern = `${layer}.${head}`;
    canvas.setAttribute("aria-label", `attention pattern of head ${layer}.${head}, ${part}: up and down move the query (the selected token), left and right the key`);
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
    const rect = canvas.getBoundingClientRect();
    if (!view || rect.width === 0) return null;
    const [rows, cols] = view.values.shape;
    const row = Math.floor(((event.clientY - rect.top) / rect.height) * rows);
    const col = Math.floor(((event.clientX - rect.left) / rect.width) * cols);
    if (row < 0 || col < 0 || row >= rows || col >= cols) return null;
    return { row, col, ...cellAt(view, row, col) };
  };
  const readout = (query: number, keyPos: number, value: number) => {
    const tokens = store.tokens;
    info.textContent = `query ${query} "${showToken(tokens[query] ?? "")}" \u2192 key ${keyPos} "${showToken(tokens[keyPos] ?? "")}": ${value.toFixed(3)}`;
  };

  const selectHead = (layer: number, head: number) => store.select({ head_layer: layer, head });
  grid.addEventListener("click", (event) => {
    const cell = (event.target as HTMLElement).closest("[data-rw-head]") as HTMLElement | null;
    if (!cell) return;
    const [layer, head] = cell.dataset.rwHead!.split(".").map(Number);
    selectHead(layer, head);
    if (store.editable && wantsIntervention(event)) store.toggle({ layer, head }, cell);
    else showDetail();
  });
  grid.addEventListener("keydown", (event) => {
    const { head_layer: layer, head } = store.selection;
    if ((event.key === "Enter" || event.key === " ") && event.shiftKey && store.editable) {
      event.preventDefault();
      store.toggle({ layer, head }, cells[layer][head]);
      return;
    }
    const step = arrowStep(event);
    if (!step) return;
    event.preventDefault();
    const next = step.home
      ? [0, 0]
      : step.end
        ? [n_layers - 1, n_heads - 1]
        : [Math.max(0, Math.min(n_layers - 1, layer + step.dy)), Math.max(0, Math.min(n_heads - 1, head + step.dx))];
    selectHead(next[0], next[1]);
    cells[next[0]][next[1]].focus();
  });
  ablate.addEventListener("click", () => {
    const { head_layer: layer, head } = store.selection;
    store.toggle({ layer, head }, ablate);
  });
  top.addEventListener("click", (event) => {
    const b = (event.target as HTMLElement).closest("[data-rw-top-head]") as HTMLElement | null;
    if (!b) return;
    const [layer, head] = b.dataset.rwTopHead!.split(".").map(Number);
    selectHead(layer, head);
    cells[layer][head].scrollIntoView?.({ block: "nearest" });
  });
  picker.addEventListener("change", () => {
    picked = true;
    paintGrid();
  });
  canvas.addEventListener("mousemove", (event) => {
    const p = pixel(event);
    if (!p || !view) return;
    readout(p.query, p.key, at(view.values, p.row, p.col));
    const values = attentionRow(view, p.query, n_tokens);
    if (values) store.emit("attend-row", { values, query: p.query });
  });
  canvas.addEventListener("mouseleave", () => store.emit("attend-row", null));
  canvas.addEventListener("click", (event) => {
    const p = pixel(event);
    if (!p) return;
    if (n_tokens <= max_side) {
      store.select({ token: p.query }); // the query's predictions, lens and neurons
      return;
    }
    const side = Math.min(256, max_side);
    const start = (i: number) => Math.max(0, Math.min(n_tokens - side, i - side / 2));
    const q0 = start(p.query);
    const k0 = start(p.key);
    window = [q0, q0 + side, k0, k0 + side];
    void fetchPattern();
  });
  canvas.addEventListener("keydown", (event) => {
    const step = arrowStep(event);
    if (!step || !view) return;
    event.preventDefault();
    const query = step.home ? 0 : step.end ? n_tokens - 1 : Math.max(0, Math.min(n_tokens - 1, store.selection.token + step.dy));
    keyCursor = Math.max(0, Math.min(n_tokens - 1, (keyCursor ?? query) + step.dx));
    if (query !== store.selection.token) store.select({ token: query });
    const spot = pixelOf(view, query, keyCursor);
    if (spot) readout(query, keyCursor, at(view.values, spot.row, spot.col));
    const values = attentionRow(view, query, n_tokens);
    store.emit("attend-row", values ? { values, query } : null);
    paintMarks();
  });
  canvas.addEventListener("blur", () => {
    keyCursor = null;
    paintMarks();
    store.emit("attend-row", null);
  });
  reset.addEventListener("click", () => {
    window = null;
    void fetchPattern();
  });
  store.on("hover-query", (query: number | null) => {
    const values = query === null || !view ? null : attentionRow(view, query, n_tokens);
    store.emit("attend-row", values ? { values, query } : null);
  });

  /** Thumbnails and the pattern sized to the panel: a 12 x 12 or 30 x 9 model's grid fits its width. */
  const fit = () => {
    const width = body.getBoundingClientRect().width;
    if (!width) return;
    const { side, scores } = thumbSize(width, n_heads, n_layers);
    grid.style.setProperty("--rw-thumb", `${side}px`);
    grid.dataset.rwScores = scores ? "on" : "off";
    const labelRoom = n_tokens <= MAX_LABELS ? 70 : 10;
    plot.style.setProperty("--rw-pattern", `${Math.max(160, Math.min(PATTERN, width - labelRoom))}px`);
  };
  /** Beside a tall grid (30 layers), the pattern moves down to the selected head's row: the head clicked and its
   * pattern share a screen. Wrapped below the grid (narrow), it stays where it is. */
  const alignDetail = () => {
    detail.style.marginTop = "0px";
    const cell = cells[store.selection.head_layer]?.[store.selection.head];
    const g = grid.getBoundingClientRect();
    const d = detail.getBoundingClientRect();
    if (!cell || !g.height || d.left < g.right) return;
    const c = cell.getBoundingClientRect();
    const offset = Math.min(c.top + c.height / 2 - g.top - d.height / 2, g.height - d.height);
    detail.style.marginTop = `${Math.max(0, Math.round(offset))}px`;
  };
  /** After a click on a head, its pattern is scrolled into view if it was below (or above) the screen: under a tall
   * grid in a half-width panel it is. */
  const showDetail = () => {
    const box = detail.getBoundingClientRect();
    const height = detail.ownerDocument.defaultView?.innerHeight ?? 0;
    if (box.height && (box.bottom > height || box.top < 0)) detail.scrollIntoView?.({ block: "nearest" });
  };
  store.on("dispose", onResize(body, () => {
    fit();
    alignDetail();
  }));
  fit();

  // the selected head's top contexts over the corpus, by its output norm (examples= or texts=)
  const fetchExamples = () => {
    const { head_layer: layer, head } = store.selection;
    if (!store.shape.head_examples) return;
    track(parts, store.request("head_examples", { layer, head })).then((reply) => {
      if (!reply) return;
      const d = reply.data;
      if (d.layer !== store.selection.head_layer || d.head !== store.selection.head) return; // no longer selected
      examples.replaceChildren(...topContexts(d, store.palette, `head ${d.layer}.${d.head}: not among the top examples given`));
    }, () => undefined);
  };
  let head = `${store.selection.head_layer}.${store.selection.head}`;
  store.on("selection", () => {
    const now = `${store.selection.head_layer}.${store.selection.head}`;
    if (now !== head) {
      head = now;
      window = null;
      fetchExamples(); // before the pattern: a saved page's note names the last request it lacks, the pattern
      void fetchPattern();
      alignDetail();
    }
    paintGrid();
    paintMarks();
  });
  store.on("intervention_list", paintGrid);
  store.on("generation", () => {
    void fetchOverview();
    void fetchPattern();
  });
  store.on("theme", () => {
    paintThumbs();
    paintPattern();
  });
  void fetchOverview();
  void fetchPattern();
  fetchExamples();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountAttention;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-attention-view { order: 1; }
.rw-root button.rw-head { position: relative; padding: 1px; border: 2px solid transparent; background: none; display: flex;
  flex-direction: column; align-items: center; border-radius: 3px; }
.rw-root button.rw-head:hover { border-color: var(--rw-muted); }
.rw-root button.rw-head.rw-top { border-style: dashed; border-color: var(--rw-fg); }
.rw-root button.rw-head.rw-selected { border-style: solid; border-color: var(--rw-select); }
.rw-thumb { width: var(--rw-thumb); height: var(--rw-thumb); image-rendering: pixelated; border: 1px solid var(--rw-border); display: block; }
.rw-score { font-size: 10px; color: var(--rw-fg); font-variant-numeric: tabular-nums; }
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
`;
