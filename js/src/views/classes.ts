// Top classes: the image's most probable classes; with interventions, clean and intervened side by side (the
// intervened column says how each class changed, in percentage points and logits).
import type { Tensor } from "../codec";
import { h, panel, signed, track } from "../dom";
import type { Reply, Store } from "../store";
import { changeClass, probability } from "./predictions";

/** The table of `reply`'s row `row` (0: clean, 1: intervened). */
function column(reply: Reply, row: number, intervened: boolean): HTMLElement {
  const d = reply.data;
  const ids = d.ids as Tensor;
  const k = ids.shape[1];
  const name = row === 0 ? "clean" : "intervened";
  const table = h("table", { class: "rw-class-table", data: { rwColumn: name } });
  const head = h("tr", {}, [h("th", { text: intervened ? name : "class" }), h("th", { text: "p" }), h("th", { text: "logit" })]);
  if (intervened && row === 1) head.append(h("th", { text: "\u0394p", title: "intervened minus clean, in percentage points" }));
  table.appendChild(head);
  for (let i = 0; i < k; i++) {
    const at = row * k + i;
    const p = (d.probs as Tensor).data[at];
    const dp = (d.delta_prob as Tensor).data[at];
    const tr = h("tr", { data: { rwClass: ids.data[at] } }, [
      h("td", { class: "rw-class-name", text: String(d.names[row][i]) }),
      probability(p),
      h("td", { class: "rw-num", text: (d.logits as Tensor).data[at].toFixed(2), title: `logit change ${signed((d.delta_logit as Tensor).data[at], 2)}` }),
    ]);
    if (intervened && row === 1) tr.append(h("td", { class: changeClass(dp), text: signed(100 * dp, 1, "pp") }));
    table.appendChild(tr);
  }
  return table;
}

export function mountClasses(el: HTMLElement, store: Store): void {
  const parts = panel("Top classes", "rw-classes-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const paint = (reply: Reply | null) => {
    if (!reply) return;
    const intervened = store.interventions.length > 0;
    body.replaceChildren(h("div", { class: "rw-columns" }, intervened ? [column(reply, 0, true), column(reply, 1, true)] : [column(reply, 1, false)]));
    root.dataset.rwGen = String(reply.gen);
    const ids = reply.data.ids as Tensor;
    root.dataset.rwTop = String(ids.data[ids.shape[1]]); // the intervened run's top class
  };
  const fetch = () => {
    track(parts, store.request("classes")).then(paint, () => undefined);
  };
  // after a click the kernel's answer carries the new classes (the panel's `then`); refetch for changes from Python
  store.on("generation", () => {
    if (!store.busy) fetch();
  });
  store.on("push:classes", paint);
  fetch();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountClasses;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-classes-view { order: 2; }
.rw-class-table { border-collapse: collapse; font-size: 12px; }
.rw-class-table td, .rw-class-table th { padding: 1px 5px; text-align: left; }
.rw-class-table th { color: var(--rw-fg); font-weight: 600; }
.rw-class-table .rw-up { color: var(--rw-up); } .rw-class-table .rw-down { color: var(--rw-down); }
.rw-class-name { max-width: 140px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
`;
