// Attribution: pick a target token (and optionally a foil); every head, layer, neuron and SAE feature ranked
// by its direct share of the target's logit (minus the foil's), so a learner sees what to click.
import { at, type Tensor } from "../codec";
import { css, diverging, ink } from "../colour";
import { h, panel, showToken, wantsIntervention } from "../dom";
import type { Reply, Store } from "../store";

/** The `k` cells of a [rows, cols] tensor with the largest absolute values, as [row, col, value]. */
export function topCells(values: Tensor, k: number): [number, number, number][] {
  const [rows, cols] = values.shape;
  const cells: [number, number, number][] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) cells.push([r, c, at(values, r, c)]);
  return cells.sort((a, b) => Math.abs(b[2]) - Math.abs(a[2])).slice(0, k);
}

export function mountAttribution(el: HTMLElement, store: Store): void {
  const { n_layers, n_heads } = store.shape;
  const { root, body } = panel("Attribution", "rw-attribution-view");
  el.appendChild(root);
  const target = h("input", { class: "rw-target", title: "target token id", data: { rwTarget: "" } });
  const foil = h("input", { class: "rw-foil", title: "foil token id (empty: the target's logit alone)", data: { rwFoil: "" } });
  target.type = foil.type = "number";
  const go = h("button", { class: "rw-small", text: "attribute", data: { rwAttribute: "" } });
  const caption = h("div", {
    class: "rw-caption",
    text: "pick a target: click a predicted token (alt+click: the foil), or type token ids",
  });
  const grid = h("div", { class: "rw-head-grid rw-dla-grid" });
  grid.style.gridTemplateColumns = `auto repeat(${n_heads}, auto)`;
  const layers = h("div", { class: "rw-dla-layers" });
  const ranked = h("ol", { class: "rw-dla-top" });
  const neurons = h("div", { class: "rw-neuron-list rw-dla-neurons" });
  const features = h("div", { class: "rw-neuron-list rw-dla-features" });
  body.append(
    h("div", { class: "rw-row" }, [h("label", { text: "target " }, [target]), h("label", { text: "foil " }, [foil]), go]),
    caption,
    h("div", { class: "rw-split" }, [grid, h("div", {}, [layers, ranked])]),
    neurons,
    features,
  );
  let shown: Reply | null = null;

  const paint = (reply: Reply) => {
    shown = reply;
    const d = reply.data;
    const heads = d.heads as Tensor;
    let limit = 1e-9;
    for (const v of heads.data) limit = Math.max(limit, Math.abs(v as number));
    const vs = d.foil_token == null ? "" : ` \u2212 logit("${showToken(d.foil_token)}")`;
    caption.textContent = `direct share of logit("${showToken(d.target_token)}")${vs} at position ${d.position}: ${Number(d.total).toFixed(2)}${d.capped ? " (before soft-capping)" : ""}; blue adds, red removes`;
    const cells: HTMLElement[] = [h("span")];
    for (let head = 0; head < n_heads; head++) cells.push(h("span", { class: "rw-axis", text: `H${head}` }));
    for (let layer = 0; layer < n_layers; layer++) {
      cells.push(h("span", { class: "rw-axis", text: `L${layer}` }));
      for (let head = 0; head < n_heads; head++) {
        const value = at(heads, layer, head);
        const rgb = diverging(value / limit);
        const cell = h("button", { class: "rw-dla-cell", text: value.toFixed(2), title: `head ${layer}.${head}: ${value.toFixed(3)}`, data: { rwHead: `${layer}.${head}`, rwLayer: layer } });
        cell.style.background = css(rgb);
        cell.style.color = ink(rgb);
        cell.classList.toggle("rw-selected", store.selection.head_layer === layer && store.selection.head === head);
        cells.push(cell);
      }
    }
    grid.replaceChildren(...cells);
    const attn = d.attn as Tensor;
    const mlp = d.mlp as Tensor;
    layers.replaceChildren(
      h("div", { class: "rw-caption", text: `embeddings ${Number(d.embed).toFixed(2)}, bias ${Number(d.bias).toFixed(2)}` }),
      ...Array.from({ length: n_layers }, (_, layer) =>
        h("div", { class: "rw-num", data: { rwLayer: layer }, text: `L${layer}: attention ${at(attn, layer).toFixed(2)}, MLP ${at(mlp, layer).toFixed(2)}` }),
      ),
    );
    ranked.replaceChildren(
      ...topCells(heads, 5).map(([layer, head, value]) =>
        h("li", { text: `head ${layer}.${head}: ${value >= 0 ? "+" : "\u2212"}${Math.abs(value).toFixed(2)}`, data: { rwHead: `${layer}.${head}` } }),
      ),
    );
  };

  /** A ranked list of neurons or features (largest share first), each a button that selects it. */
  const list = (into: HTMLElement, title: string, reply: Reply | null, item: (index: number) => Record<string, string | number>) => {
    if (!reply) return;
    const values = reply.data.values as Tensor;
    const indices = reply.data.indices as Tensor;
    into.replaceChildren(
      h("span", { class: "rw-axis", text: title }),
      ...Array.from(indices.data, (index, i) =>
        h("button", { class: "rw-neuron", text: `${index}  ${(values.data[i] as number).toFixed(2)}`, data: item(index as number) }),
      ),
    );
  };
  const fetch = () => {
    const t = target.value.trim();
    if (t === "") return;
    const args: Record<string, unknown> = { position: store.selection.token, target: Number(t) };
    if (foil.value.trim() !== "") args.foil = Number(foil.value);
    store.request("attribution", args).then((r) => r && paint(r), () => undefined);
    const layer = store.selection.layer;
    store
      .request("attribution_neurons", { ...args, layer }, "attribution-neurons")
      .then((r) => list(neurons, `neurons of layer ${layer} by direct share: `, r, (i) => ({ rwNeuron: `${layer}.${i}`, rwLayer: layer })), () => undefined);
    if (store.saes.length)
      store
        .request("attribution_features", { ...args, sae: store.selection.sae ?? 0 }, "attribution-features")
        .then((r) => list(features, "SAE features by direct share: ", r, (i) => ({ rwFeature: i })), () => undefined);
  };
  neurons.addEventListener("click", (event) => {
    const b = (event.target as HTMLElement).closest("[data-rw-neuron]") as HTMLElement | null;
    if (b) store.select({ layer: Number(b.dataset.rwLayer), neuron: Number(b.dataset.rwNeuron!.split(".")[1]) });
  });
  features.addEventListener("click", (event) => {
    const b = (event.target as HTMLElement).closest("[data-rw-feature]") as HTMLElement | null;
    if (b) store.select({ feature: Number(b.dataset.rwFeature) });
  });
  go.addEventListener("click", fetch);
  const pick = (event: Event) => {
    const cell = (event.target as HTMLElement).closest("[data-rw-head]") as HTMLElement | null;
    if (!cell) return;
    const [layer, head] = cell.dataset.rwHead!.split(".").map(Number);
    // the same gestures as the head grid: a click shows the head, shift+click ablates it
    store.select({ head_layer: layer, head });
    if (store.editable && wantsIntervention(event as MouseEvent)) store.toggle({ layer, head }, cell);
  };
  grid.addEventListener("click", pick);
  store.watch(["head_layer", "head"], () => {
    const chosen = `${store.selection.head_layer}.${store.selection.head}`;
    grid.querySelectorAll<HTMLElement>("[data-rw-head]").forEach((c) => c.classList.toggle("rw-selected", c.dataset.rwHead === chosen));
  });
  ranked.addEventListener("click", pick);
  // a prediction's token picks the target (its id travels in the event)
  store.on("pick-target", (id: number) => {
    target.value = String(id);
    fetch();
  });
  store.on("pick-foil", (id: number) => {
    foil.value = String(id);
    fetch();
  });
  store.watch(["token", "layer"], () => shown && fetch());
  store.on("generation", () => shown && fetch());
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountAttribution;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-attribution-view { order: 7; }
.rw-attribution-view { grid-column: 1 / -1; }
.rw-dla-cell { font: 10px var(--rw-mono); border: 1px solid transparent; padding: 2px 3px; cursor: pointer; color: var(--rw-fg); }
.rw-dla-cell.rw-selected { outline: 2px solid var(--rw-select); }
.rw-target, .rw-foil { width: 80px; }
`;
