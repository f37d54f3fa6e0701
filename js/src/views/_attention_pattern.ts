// The attention view's pattern pane (a helper of attention.ts, not a view): the selected head's pattern as a canvas
// heatmap (pooled overview with zoom for long prompts), token labels along its axes when they fit, the selected query's
// row and a key cursor drawn over it, a readout on hover, and the arrow keys moving the query (the selected token) and
// the key cursor.
import { at, type Tensor } from "../codec";
import { maxOf, paintMatrix } from "../colour";
import { arrowStep, colourBar, h, type PanelParts, showToken, track } from "../dom";
import { attentionRow, cellAt, pixelOf, type PatternView } from "../pattern";
import type { Store } from "../store";

/** Token labels along the pattern's axes up to this many rows. */
const MAX_LABELS = 48;
/** The pattern's side at most, in pixels (smaller when the panel is narrower). */
const PATTERN = 320;

/** The pane's element and what the view calls on it. */
export interface PatternPane {
  /** The pane: title, pattern with its labels, colour key and readout. */
  detail: HTMLElement;
  /** Ask for the selected head's pattern (in the zoomed window, if any) and paint it. */
  fetch: () => Promise<void>;
  /** A new head is selected: forget the zoom and ask for its whole pattern. */
  showHead: () => Promise<void>;
  /** Repaint the pattern (the palette changed). */
  paint: () => void;
  /** Redraw the selected query's row and the key cursor (the selection changed). */
  paintMarks: () => void;
  /** Size the pattern to a panel `width` pixels wide. */
  fit: (width: number) => void;
}

/** Build the pattern pane for `store`'s selected head; `parts` is the panel whose busy state its requests mark. */
export function mountPatternPane(store: Store, parts: PanelParts): PatternPane {
  const { n_tokens, max_side = 512 } = store.shape;
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

  let view: PatternView | null = null;
  let scale = 1;
  let zoom: [number, number, number, number] | null = null;
  let keyCursor: number | null = null;

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

  const paint = () => {
    if (!view) return;
    const [rows, cols] = view.values.shape;
    paintMatrix(canvas, view.values.data, rows, cols, scale, store.palette);
    key.replaceChildren(colourBar(store.palette, "sequential", "0", scale.toFixed(2), "attention"));
    paintMarks();
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

  const fetch = async () => {
    const { head_layer: layer, head } = store.selection;
    const args: Record<string, unknown> = { layer, head };
    if (zoom) args.window = zoom;
    const reply = await track(parts, store.request("pattern", args)).catch(() => null);
    if (!reply) return;
    const values = reply.data.pattern as Tensor;
    view = { values, window: reply.data.window };
    scale = maxOf(values.data);
    const [rows, cols] = values.shape;
    const [q0, q1, k0, k1] = view.window;
    labels(q0, k0, rows, cols, !reply.data.pooled);
    paint();
    const part = zoom ? `queries ${q0}-${q1 - 1}, keys ${k0}-${k1 - 1}` : `${n_tokens} x ${n_tokens}`;
    title.textContent = `pattern of head ${layer}.${head}: ${part}${reply.data.pooled ? " (pooled; click to zoom)" : ""}`;
    canvas.dataset.rwPattern = `${layer}.${head}`;
    canvas.setAttribute("aria-label", `attention pattern of head ${layer}.${head}, ${part}: up and down move the query (the selected token), left and right the key`);
    reset.hidden = zoom === null;
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
    zoom = [q0, q0 + side, k0, k0 + side];
    void fetch();
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
    zoom = null;
    void fetch();
  });
  store.on("hover-query", (query: number | null) => {
    const values = query === null || !view ? null : attentionRow(view, query, n_tokens);
    store.emit("attend-row", values ? { values, query } : null);
  });

  const fit = (width: number) => {
    const labelRoom = n_tokens <= MAX_LABELS ? 70 : 10;
    plot.style.setProperty("--rw-pattern", `${Math.max(160, Math.min(PATTERN, width - labelRoom))}px`);
  };
  const showHead = () => {
    zoom = null;
    return fetch();
  };
  return { detail, fetch, showHead, paint, paintMarks, fit };
}
