// The class lens (a ViT): after each block, the probability of each class when the CLS token's residual stream is
// read through the final norm and the classifier, as a layer x class table; with interventions, clean and
// intervened side by side. The columns are the classes any layer ranks in its top 3; each row's top class is bold.
import { css, ink, sequential } from "../colour";
import { h, panel, track } from "../dom";
import type { Reply, Store } from "../store";

/** One table: rows are layers, columns the reply's classes; `which` is 0 (clean) or 1 (intervened). */
export function lensTable(reply: Reply, which: number, store: Store): HTMLTableElement {
  const d = reply.data;
  const [, layers, columns] = d.probs.shape as number[];
  const names = d.names as string[];
  const table = h("table", { class: "rw-class-lens", data: { rwColumn: which === 0 ? "clean" : "intervened" } });
  table.appendChild(h("tr", {}, [h("th", { text: which === 0 ? "block" : "intervened" }), ...names.map((name) => h("th", { text: name }))]));
  for (let layer = 0; layer < layers; layer++) {
    const top = d.top.data[which * layers + layer] as number;
    const row = h("tr", { data: { rwLayer: layer } }, [h("td", { class: "rw-axis", text: String(layer) })]);
    for (let c = 0; c < columns; c++) {
      const p = d.probs.data[(which * layers + layer) * columns + c] as number;
      const rgb = sequential(p, store.palette);
      const cell = h("td", { class: "rw-num", text: `${Math.round(100 * p)}`, data: { rwLayer: layer, rwClass: names[c] } });
      cell.style.background = css(rgb);
      cell.style.color = ink(rgb);
      cell.title = `block ${layer}: class ${names[c]} ${(100 * p).toFixed(1)}%`;
      if (d.classes.data[c] === top) cell.classList.add("rw-top");
      row.appendChild(cell);
    }
    table.appendChild(row);
  }
  return table;
}

export function mountClassLens(el: HTMLElement, store: Store): void {
  const parts = panel("Class lens", "rw-class-lens-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const paint = (reply: Reply | null) => {
    if (!reply) return;
    const intervened = store.interventions.length > 0;
    const caption = h("div", { class: "rw-caption", text: "% of each class when CLS is read through the final norm and classifier after each block" });
    body.replaceChildren(caption, h("div", { class: "rw-columns" }, intervened ? [lensTable(reply, 0, store), lensTable(reply, 1, store)] : [lensTable(reply, 0, store)]));
    root.dataset.rwGen = String(reply.gen);
  };
  const fetch = () => void track(parts, store.request("class_lens")).then(paint, () => undefined);
  store.on("generation", fetch);
  fetch();
}

export const mount = mountClassLens;

export const styles = `
.rw-class-lens { border-collapse: collapse; font-size: 11px; margin-right: 8px; }
.rw-class-lens td, .rw-class-lens th { padding: 1px 4px; text-align: center; min-width: 20px; }
.rw-class-lens .rw-top { font-weight: 700; outline: 1px solid currentColor; outline-offset: -1px; }
`;
