// Patching: which sites of the corrupted prompt's run, patched into this one, change its prediction: a
// heatmap per site (layer x position, or layer x head) of the normalised metric (1: no change, 0: as corrupted);
// a click on a cell selects its layer and position (or head); shift+click applies that patch, as shift+click
// ablates in the head grid.
import { at, type Tensor } from "../codec";
import { css, diverging, ink } from "../colour";
import { h, panel, showToken, wantsIntervention } from "../dom";
import type { Reply, Store } from "../store";

const SITES = ["resid_pre", "attn_out", "mlp_out", "heads"];
const METHODS = ["exact", "attribution"];

export function mountPatching(el: HTMLElement, store: Store): void {
  const { root, body } = panel("Patching", "rw-patching-view");
  el.appendChild(root);
  const site = h("select", { class: "rw-site", title: "which activations are patched", data: { rwSite: "" } });
  SITES.forEach((name, i) => {
    const option = h("option", { text: name });
    option.value = String(i);
    site.appendChild(option);
  });
  site.value = "3";
  const method = h("select", { class: "rw-method", title: "exact: every patch re-run; attribution: first-order estimate", data: { rwMethod: "" } });
  METHODS.forEach((name, i) => {
    const option = h("option", { text: name });
    option.value = String(i);
    method.appendChild(option);
  });
  const caption = h("div", { class: "rw-caption", text: "computing the sweep\u2026" });
  const table = h("table", { class: "rw-patch-table" });
  body.append(h("div", { class: "rw-row" }, [h("label", { text: "site " }, [site]), h("label", { text: "method " }, [method])]), caption, table);
  let metric: { target: number; foil: number } | null = null;
  let shown: Reply | null = null;

  const paint = (reply: Reply) => {
    shown = reply;
    const d = reply.data;
    const values = d.values as Tensor;
    const [rows, cols] = values.shape;
    const across = d.axes[1] as string;
    caption.textContent = `logit("${showToken(d.target_token)}") \u2212 logit("${showToken(d.foil_token)}") at the last position, normalised: 1 = this prompt (${Number(d.clean).toFixed(2)}), 0 = the corrupted one (${Number(d.corrupted).toFixed(2)}); each cell: that ${across === "head" ? "head's output" : "site"} taken from the corrupted run (${d.method}). Click a cell to select it, shift+click to apply that patch.`;
    const tokens = store.tokens;
    const header = h("tr", {}, [h("th")]);
    for (let c = 0; c < cols; c++) header.appendChild(h("th", { class: "rw-axis", text: across === "head" ? `H${c}` : showToken(tokens[c] ?? ""), title: `${across} ${c}` }));
    const trs = [header];
    for (let r = 0; r < rows; r++) {
      const tr = h("tr", {}, [h("th", { class: "rw-axis", text: `L${r}` })]);
      for (let c = 0; c < cols; c++) {
        const value = at(values, r, c);
        const rgb = diverging(2 * (value - 0.5));
        const td = h("td", { class: "rw-patch-cell", text: value.toFixed(2), title: `layer ${r}, ${across} ${c}: ${value.toFixed(3)}`, data: { rwCell: `${r}.${c}` } });
        td.style.background = css(rgb);
        td.style.color = ink(rgb);
        tr.appendChild(td);
      }
      trs.push(tr);
    }
    table.replaceChildren(...trs);
    root.dataset.rwSweep = `${d.site}/${d.method}`;
  };

  const fetch = () => {
    if (!metric) return;
    caption.textContent = "computing the sweep\u2026";
    store
      .request("sweep", { site: Number(site.value), method: Number(method.value), target: metric.target, foil: metric.foil })
      .then((r) => r && paint(r), () => undefined);
  };
  site.addEventListener("change", fetch);
  method.addEventListener("change", fetch);
  table.addEventListener("click", (event) => {
    const cell = (event.target as HTMLElement).closest("[data-rw-cell]") as HTMLElement | null;
    if (!cell || !metric) return;
    const [layer, index] = cell.dataset.rwCell!.split(".").map(Number);
    store.select(shown?.data.axes[1] === "head" ? { head_layer: layer, head: index } : { layer, token: index });
    if (!store.editable || !wantsIntervention(event)) return;
    store.command({ type: "apply_patch", site: Number(site.value), method: Number(method.value), target: metric.target, foil: metric.foil, cell: [layer, index] });
  });
  store.request("sweep_defaults").then((r) => {
    if (!r) return;
    metric = { target: r.data.target, foil: r.data.foil };
    fetch();
  }, () => undefined);
  void shown;
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountPatching;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-patching-view { order: 8; }
.rw-patching-view { grid-column: 1 / -1; }
.rw-patch-table { border-collapse: collapse; font: 10px var(--rw-mono); }
.rw-patch-cell { padding: 1px 3px; cursor: pointer; text-align: right; }
.rw-patch-table th { max-width: 60px; overflow: hidden; white-space: pre; color: var(--rw-fg); }
`;
