// Neurons: pick a layer; the MLP neurons most active at the selected token. Click one to select it
// (its activation colours the tokens) and to toggle its ablation.
import type { Tensor } from "../codec";
import { h, panel } from "../dom";
import type { Store } from "../store";

export function mountNeurons(el: HTMLElement, store: Store): void {
  const { n_layers } = store.shape;
  const { root, body } = panel("Neurons", "rw-neurons-view");
  el.appendChild(root);
  const layers = h("div", { class: "rw-row" }, [h("span", { class: "rw-axis", text: "layer " })]);
  const layerButtons: HTMLButtonElement[] = [];
  for (let layer = 0; layer < n_layers; layer++) {
    const button = h("button", { class: "rw-small rw-layer", text: String(layer), data: { rwLayer: layer } });
    layerButtons.push(button);
    layers.appendChild(button);
  }
  const caption = h("div", { class: "rw-caption" });
  const list = h("div", { class: "rw-neuron-list" });
  body.append(layers, caption, list);

  let top: { indices: Tensor; values: Tensor; layer: number; position: number } | null = null;

  const paint = () => {
    const sel = store.selection;
    layerButtons.forEach((b, layer) => b.classList.toggle("rw-selected", layer === sel.layer));
    if (!top) return;
    const ablated = new Set(
      store.interventions.filter((iv) => iv.type === "ablate" && iv.neuron != null).map((iv) => `${iv.layer}.${iv.neuron}`),
    );
    caption.textContent = `most active at position ${top.position}, layer ${top.layer} (click: ${store.editable && store.action === "ablate" ? "ablate" : "select"})`;
    list.replaceChildren(
      ...Array.from(top.indices.data, (index, i) => {
        const id = `${top!.layer}.${index}`;
        const button = h("button", {
          class: "rw-neuron",
          text: `n${index}  ${(top!.values.data[i] as number).toFixed(2)}`,
          data: { rwNeuron: id, rwLayer: top!.layer },
        });
        button.classList.toggle("rw-selected", sel.neuron === index && sel.layer === top!.layer);
        button.classList.toggle("rw-ablated", ablated.has(id));
        return button;
      }),
    );
  };

  const fetch = async () => {
    const { layer, token } = store.selection;
    const reply = await store.request("neurons", { layer, position: token }).catch(() => null);
    if (!reply) return;
    top = reply.data as typeof top;
    paint();
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
    if (store.editable && store.action === "ablate") store.toggle({ layer, neuron });
  });
  let last = "";
  store.on("selection", () => {
    const now = `${store.selection.layer}/${store.selection.token}`;
    if (now !== last) {
      last = now;
      void fetch();
    }
    paint();
  });
  store.on("intervention_list", paint);
  store.on("generation", () => void fetch());
  last = `${store.selection.layer}/${store.selection.token}`;
  void fetch();
}
