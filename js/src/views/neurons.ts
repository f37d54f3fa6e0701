// Neurons: pick a layer; the MLP neurons most active at the selected token. A click selects one (its activation
// colours the tokens, its top contexts over the explorer's corpus show below); shift+click or the ablate button
// toggles its ablation. Ablated neurons stay listed.
import type { Tensor } from "../codec";
import { topContexts } from "../contexts";
import { h, panel, track, wantsIntervention } from "../dom";
import type { Reply, Store } from "../store";

/** The ablated neurons of `layer` in an interventions list. */
export function ablatedNeurons(store: Store, layer: number): number[] {
  return store.interventions
    .filter((iv) => iv.type === "ablate" && iv.neuron != null && iv.layer === layer && iv.sae == null)
    .map((iv) => iv.neuron as number);
}

export function mountNeurons(el: HTMLElement, store: Store): void {
  const { n_layers } = store.shape;
  const parts = panel("Neurons", "rw-neurons-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const layers = h("div", { class: "rw-row", attrs: { role: "group", "aria-label": "neuron layer" } }, [h("span", { class: "rw-axis", text: "layer " })]);
  const layerButtons: HTMLButtonElement[] = [];
  for (let layer = 0; layer < n_layers; layer++) {
    const button = h("button", { class: "rw-small rw-layer", text: String(layer), data: { rwLayer: layer }, attrs: { "aria-label": `neurons of layer ${layer}` } });
    layerButtons.push(button);
    layers.appendChild(button);
  }
  const caption = h("div", { class: "rw-caption" });
  const list = h("div", { class: "rw-neuron-list", attrs: { role: "group", "aria-label": "neurons" } });
  const ablate = h("button", { class: "rw-small rw-ablate-button", data: { rwAblate: "neuron" } });
  const selectedRow = h("div", { class: "rw-selected-head" }, [ablate]);
  const examples = h("div", { class: "rw-neuron-examples", attrs: { "aria-label": "the neuron's top contexts" } });
  body.append(layers, caption, list, selectedRow, examples);

  let top: { indices: Tensor; values: Tensor; layer: number; position: number } | null = null;

  const paint = () => {
    const sel = store.selection;
    layerButtons.forEach((b, layer) => {
      b.classList.toggle("rw-selected", layer === sel.layer);
      b.setAttribute("aria-pressed", String(layer === sel.layer));
    });
    const chosen = sel.neuron != null ? { layer: sel.layer, neuron: sel.neuron } : null;
    selectedRow.hidden = !store.editable || chosen === null;
    if (chosen) {
      const on = store.ablated(chosen);
      ablate.textContent = on ? `restore neuron ${chosen.layer}.${chosen.neuron}` : `ablate neuron ${chosen.layer}.${chosen.neuron}`;
      ablate.setAttribute("aria-pressed", String(on));
      ablate.setAttribute("aria-label", on ? `restore neuron ${chosen.layer}.${chosen.neuron}: remove its ablation` : `ablate neuron ${chosen.layer}.${chosen.neuron}`);
    }
    if (!top) return;
    const layer = top.layer;
    const ablated = ablatedNeurons(store, layer);
    caption.textContent = `most active at position ${top.position}, layer ${layer}`;
    const listed = Array.from(top.indices.data, (index, i) => ({ index, value: top!.values.data[i] as number | null }));
    for (const index of ablated) if (!listed.some((item) => item.index === index)) listed.push({ index, value: null });
    list.replaceChildren(
      ...listed.map(({ index, value }) => {
        const isAblated = ablated.includes(index);
        const text = value === null ? `n${index}  ablated` : `n${index}  ${value.toFixed(2)}`;
        const label = `neuron ${layer}.${index}${value === null ? "" : `, activation ${value.toFixed(2)}`}${isAblated ? ", ablated" : ""}`;
        const button = h("button", {
          class: "rw-neuron",
          text,
          title: `${label}\nclick: select · shift+click: ${isAblated ? "restore" : "ablate"}`,
          data: { rwNeuron: `${layer}.${index}`, rwLayer: layer },
          attrs: { "aria-label": label, "aria-pressed": String(sel.neuron === index && sel.layer === layer) },
        });
        button.classList.toggle("rw-selected", sel.neuron === index && sel.layer === layer);
        button.classList.toggle("rw-ablated", isAblated);
        return button;
      }),
    );
  };

  const fetch = async () => {
    const { layer, token } = store.selection;
    const reply = await track(parts, store.request("neurons", { layer, position: token })).catch(() => null);
    if (!reply) return;
    top = reply.data as typeof top;
    paint();
  };

  const showExamples = (reply: Reply | null) => {
    if (!reply) return;
    const d = reply.data;
    const { layer, neuron } = store.selection;
    if (d.layer !== layer || d.index !== neuron) return; // an answer for a neuron no longer selected
    examples.replaceChildren(...topContexts(d, store.palette, `neuron ${d.layer}.${d.index}: not among the top examples given`));
  };

  let shownExamples = "";
  const fetchExamples = () => {
    const { layer, neuron } = store.selection;
    const now = neuron == null || !store.shape.neuron_examples ? "" : `${layer}.${neuron}`;
    if (now === shownExamples) return;
    shownExamples = now;
    if (!now) {
      examples.replaceChildren();
      return;
    }
    track(parts, store.request("neuron_examples", { layer, index: neuron })).then(showExamples, () => undefined);
  };

  layers.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-layer]") as HTMLElement | null;
    if (button) store.select({ layer: Number(button.dataset.rwLayer), neuron: null });
  });
  list.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-neuron]") as HTMLElement | null;
    if (!button) return;
    const [layer, neuron] = button.dataset.rwNeuron!.split(".").map(Number);
    store.select({ layer, neuron, feature: null });
    if (store.editable && wantsIntervention(event)) store.toggle({ layer, neuron }, button);
  });
  ablate.addEventListener("click", () => {
    const { layer, neuron } = store.selection;
    if (neuron != null) store.toggle({ layer, neuron }, ablate);
  });
  let last = "";
  store.on("selection", () => {
    const now = `${store.selection.layer}/${store.selection.token}`;
    if (now !== last) {
      last = now;
      void fetch();
    }
    fetchExamples();
    paint();
  });
  store.on("intervention_list", paint);
  store.on("generation", () => void fetch());
  last = `${store.selection.layer}/${store.selection.token}`;
  void fetch();
  fetchExamples();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountNeurons;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-neurons-view { order: 4; }
.rw-example { font-family: var(--rw-mono); font-size: 11px; margin: 1px 0; white-space: pre-wrap; }
.rw-ctx-peak { outline: 1px solid currentColor; }
`;
