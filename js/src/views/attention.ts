// Attention: a layer x head grid of thumbnails with head scores (sized to the panel), and the selected head's
// pattern as a canvas heatmap (pooled overview with zoom for long prompts; the pane is _attention_pattern.ts). A click
// on a head selects it (its pattern shows); shift+click, or the ablate button beside its scores, toggles its
// ablation. Arrow keys move the selected head in the grid, and the query (the selected token) and a key cursor in the
// pattern. The top heads by the chosen score are outlined (dashed) and listed beside the picker; an entry selects it.
import { at, type Tensor, topCells } from "../codec";
import { maxOf, paintMatrix } from "../colour";
import { topContexts } from "../contexts";
import { arrowStep, h, labelled, onResize, panel, track, wantsIntervention } from "../dom";
import { thumbSize } from "../layout";
import { defaultScore } from "../pattern";
import type { Store } from "../store";
import { mountPatternPane } from "./_attention_pattern";

/** The highest-scoring heads for the chosen score: outlined in the grid and listed beside the picker. */
export const TOP_HEADS = 5;

export const SCORE_LABELS: Record<string, string> = {
  previous_token: "previous token",
  induction: "induction",
  duplicate_token: "duplicate token",
  first_token: "first token",
};

export function mountAttention(el: HTMLElement, store: Store): void {
  const { n_layers, n_heads } = store.shape;
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
  const pattern = mountPatternPane(store, parts);
  const { detail } = pattern;
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

  /** Thumbnails and the pattern sized to the panel: a 12 x 12 or 30 x 9 model's grid fits its width. */
  const fit = () => {
    const width = body.getBoundingClientRect().width;
    if (!width) return;
    const { side, scores } = thumbSize(width, n_heads, n_layers);
    grid.style.setProperty("--rw-thumb", `${side}px`);
    grid.dataset.rwScores = scores ? "on" : "off";
    pattern.fit(width);
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
      fetchExamples(); // before the pattern: a saved page's note names the last request it lacks, the pattern
      void pattern.showHead();
      alignDetail();
    }
    paintGrid();
    pattern.paintMarks();
  });
  store.on("intervention_list", paintGrid);
  store.on("generation", () => {
    void fetchOverview();
    void pattern.fetch();
  });
  store.on("theme", () => {
    paintThumbs();
    pattern.paint();
  });
  void fetchOverview();
  void pattern.fetch();
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
