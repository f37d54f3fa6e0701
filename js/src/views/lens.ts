// Logit lens: for positions around the selected token, the top next token after every layer.
import { at, type Tensor } from "../codec";
import { css, ink, sequential } from "../colour";
import { h, panel, showToken } from "../dom";
import type { Store } from "../store";

/** How many positions the lens shows at once, around the selected token (the kernel's `shape.lens_width`). */
export const LENS_WIDTH = 16;

/** The [start, stop) window of `width` positions around `token` inside `0..n`. */
export function lensWindow(token: number, n: number, width = LENS_WIDTH): [number, number] {
  const start = Math.max(0, Math.min(n - width, token - Math.floor(width / 2)));
  return [Math.max(0, start), Math.min(n, Math.max(0, start) + width)];
}

export function mountLens(el: HTMLElement, store: Store): void {
  const { n_layers, n_tokens, lens_width = LENS_WIDTH } = store.shape;
  const { root, body } = panel("Logit lens", "rw-lens-view");
  el.appendChild(root);
  const table = h("table", { class: "rw-lens" });
  body.append(h("div", { class: "rw-caption", text: "top next token after each layer (colour: its probability)" }), table);
  let shown: { ids: Tensor; probs: Tensor; start: number; vocab: Record<string, string> } | null = null;

  const paint = () => {
    if (!shown) return;
    const sel = store.selection;
    const tokens = store.tokens;
    const width = shown.ids.shape[1];
    const header = h("tr", {}, [h("th")]);
    for (let i = 0; i < width; i++) {
      const pos = shown.start + i;
      const th = h("th", { class: "rw-lens-token", text: showToken(tokens[pos] ?? ""), title: `position ${pos}`, data: { rwToken: pos } });
      th.classList.toggle("rw-selected", pos === sel.token);
      header.appendChild(th);
    }
    const rows = [header];
    for (let layer = n_layers - 1; layer >= 0; layer--) {
      const tr = h("tr", {}, [h("th", { class: "rw-axis", text: `L${layer}`, data: { rwLayer: layer } })]);
      for (let i = 0; i < width; i++) {
        const pos = shown.start + i;
        const id = at(shown.ids, layer, i);
        const p = at(shown.probs, layer, i);
        const word = shown.vocab[String(id)] ?? String(id);
        const rgb = sequential(p);
        const td = h("td", {
          class: "rw-lens-cell",
          text: showToken(word),
          title: `after layer ${layer}, position ${pos}: "${word}" p=${p.toFixed(3)}`,
          data: { rwLayer: layer, rwToken: pos },
        });
        td.style.background = css(rgb);
        td.style.color = ink(rgb);
        td.classList.toggle("rw-selected", pos === sel.token && layer === sel.layer);
        tr.appendChild(td);
      }
      rows.push(tr);
    }
    table.replaceChildren(...rows);
  };

  const fetch = async () => {
    const [start, stop] = lensWindow(store.selection.token, n_tokens, lens_width);
    const reply = await store.request("lens", { start, stop }).catch(() => null);
    if (!reply) return;
    shown = reply.data as typeof shown;
    paint();
  };

  table.addEventListener("click", (event) => {
    const cell = (event.target as HTMLElement).closest("[data-rw-token],[data-rw-layer]") as HTMLElement | null;
    if (!cell) return;
    const change: { token?: number; layer?: number } = {};
    if (cell.dataset.rwToken !== undefined) change.token = Number(cell.dataset.rwToken);
    if (cell.dataset.rwLayer !== undefined) change.layer = Number(cell.dataset.rwLayer);
    store.select(change);
  });
  let window = lensWindow(store.selection.token, n_tokens, lens_width).join();
  store.on("selection", () => {
    const now = lensWindow(store.selection.token, n_tokens, lens_width).join();
    if (now !== window) {
      window = now;
      void fetch();
    } else paint();
  });
  store.on("generation", () => void fetch());
  void fetch();
}
