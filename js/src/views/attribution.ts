// Attribution: pick a target token (and optionally a foil) by its text (a vocabulary search) or by clicking a
// prediction; every head, layer, neuron and SAE feature ranked by its direct share of the target's logit (minus the
// foil's) in the run shown (the caption says which), so a learner sees what to click. It sits below the predictions.
import { at, type Tensor, topCells } from "../codec";
import { css, diverging, ink } from "../colour";
import { h, panel, showToken, wantsIntervention } from "../dom";
import type { Reply, Store } from "../store";

/** A text box that picks a token by its text: typing searches the vocabulary (the kernel's `vocab_search`), the
 * candidates are listed with their ids (a leading space shown as "·"), and arrow keys + Enter or a click pick one. */
export interface WordBox {
  root: HTMLElement;
  input: HTMLInputElement;
  /** the picked token's id, or null (nothing picked, or the text changed since) */
  id: number | null;
  /** show `id` (and its text, once known) as picked, without searching */
  set(id: number | null, token?: string | null): void;
}

let boxes = 0;

export function wordBox(store: Store, name: "target" | "foil", onPick: () => void): WordBox {
  const listId = `rw-words-${name}-${++boxes}`;
  const input = h("input", {
    class: `rw-word rw-${name}`,
    title: name === "target" ? "target token: type a word and pick it from the list" : "foil token (empty: the target's logit alone)",
    data: { [name === "target" ? "rwTarget" : "rwFoil"]: "" },
    attrs: { type: "text", role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false", "aria-controls": listId, placeholder: "type a word", spellcheck: "false", autocomplete: "off" },
  });
  const list = h("ul", { class: "rw-word-list", data: { rwWords: name }, attrs: { id: listId, role: "listbox", "aria-label": `${name} candidates` } });
  list.hidden = true;
  const root = h("span", { class: "rw-word-box" }, [h("label", { text: `${name} ` }, [input]), list]);
  let active = -1;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const box: WordBox = {
    root,
    input,
    id: null,
    set(id, token) {
      box.id = id;
      input.value = id === null ? "" : token != null ? showToken(token) : `#${id}`;
      close();
    },
  };
  const options = () => Array.from(list.querySelectorAll<HTMLElement>("[data-rw-word-id]"));
  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    options().forEach((o) => o.setAttribute("aria-selected", "false")); // a closed list selects nothing
    active = -1;
  };
  const highlight = (i: number) => {
    const all = options();
    active = all.length ? (i + all.length) % all.length : -1;
    all.forEach((o, j) => o.setAttribute("aria-selected", String(j === active)));
    if (active >= 0) input.setAttribute("aria-activedescendant", all[active].id);
  };
  const pick = (option: HTMLElement) => {
    box.set(Number(option.dataset.rwWordId), option.dataset.rwWordText ?? null);
    onPick();
  };
  const search = async () => {
    const query = input.value.trim();
    if (!query) return close();
    const reply = await store.request("vocab_search", { query }, `vocab-${listId}`).catch(() => null);
    if (!reply || input.value.trim() !== query) return;
    const ids = reply.data.ids.data as ArrayLike<number>;
    const tokens = reply.data.tokens as string[];
    list.replaceChildren(
      ...(tokens.length
        ? tokens.map((token, i) =>
            h("li", { class: "rw-word-option", attrs: { id: `${listId}-${i}`, role: "option", "aria-selected": "false" }, data: { rwWordId: ids[i], rwWordText: token } }, [
              h("span", { class: "rw-word-text", text: showToken(token) }),
              h("span", { class: "rw-word-id", text: ` #${ids[i]}` }),
            ]),
          )
        : [h("li", { class: "rw-caption", text: `no token contains "${query}"` })]),
    );
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(tokens.length ? 0 : -1);
  };
  input.addEventListener("input", () => {
    box.id = null;
    clearTimeout(timer);
    if (!input.value.trim()) {
      close();
      if (name === "foil") onPick(); // an emptied foil: the target's logit alone
      return;
    }
    timer = setTimeout(() => void search(), 120);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (list.hidden) void search();
      else highlight(active + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter") {
      event.preventDefault();
      const all = options();
      if (!list.hidden && all.length) pick(all[Math.max(0, active)]);
    } else if (event.key === "Escape") close();
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus in the box
  list.addEventListener("click", (event) => {
    const option = (event.target as HTMLElement).closest("[data-rw-word-id]") as HTMLElement | null;
    if (option) pick(option);
  });
  return box;
}

export function mountAttribution(el: HTMLElement, store: Store): void {
  const { n_layers, n_heads } = store.shape;
  const { root, body } = panel("Attribution", "rw-attribution-view");
  el.appendChild(root);
  const target = wordBox(store, "target", () => fetch());
  const foil = wordBox(store, "foil", () => fetch());
  const caption = h("div", {
    class: "rw-caption",
    data: { rwDlaCaption: "" },
    text: "pick a target: type a word, or click a predicted token (alt+click: the foil; Tab to it and Enter)",
  });
  const grid = h("div", { class: "rw-head-grid rw-dla-grid" });
  grid.style.gridTemplateColumns = `auto repeat(${n_heads}, auto)`;
  const layers = h("div", { class: "rw-dla-layers" });
  const ranked = h("ol", { class: "rw-dla-top" });
  const neurons = h("div", { class: "rw-neuron-list rw-dla-neurons" });
  const features = h("div", { class: "rw-neuron-list rw-dla-features" });
  body.append(
    h("div", { class: "rw-row" }, [target.root, foil.root]),
    caption,
    h("div", { class: "rw-split" }, [h("div", { class: "rw-dla-scroll" }, [grid]), h("div", {}, [layers, ranked])]),
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
    const run = d.run === "intervened" ? "in the intervened run (with the interventions)" : "in the clean run (no interventions)";
    caption.textContent = `direct share of logit("${showToken(d.target_token)}")${vs} at position ${d.position} ${run}: ${Number(d.total).toFixed(2)}${d.capped ? " (before soft-capping)" : ""}; blue adds, red removes`;
    caption.dataset.rwDlaRun = d.run as string;
    // the boxes show the words picked (an id from a click in the predictions gets its text here)
    if (document.activeElement !== target.input && target.id === d.target) target.set(d.target as number, d.target_token as string);
    if (document.activeElement !== foil.input && d.foil != null && foil.id === d.foil) foil.set(d.foil as number, d.foil_token as string);
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
    const cell = (text: string, cls = "rw-num") => h("td", { class: cls, text });
    layers.replaceChildren(
      h("div", { class: "rw-caption", text: `embeddings ${Number(d.embed).toFixed(2)}, bias ${Number(d.bias).toFixed(2)}` }),
      h("table", { class: "rw-dla-layer-table" }, [
        h("tr", {}, [h("th", { text: "layer" }), h("th", { text: "attention" }), h("th", { text: "MLP" })]),
        ...Array.from({ length: n_layers }, (_, layer) =>
          h("tr", { data: { rwLayer: layer } }, [cell(`L${layer}`, "rw-num rw-axis"), cell(at(attn, layer).toFixed(2)), cell(at(mlp, layer).toFixed(2))]),
        ),
      ]),
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
  function fetch() {
    if (target.id === null) return;
    const args: Record<string, unknown> = { position: store.selection.token, target: target.id };
    if (foil.id !== null) args.foil = foil.id;
    store.request("attribution", args).then((r) => r && paint(r), () => undefined);
    const layer = store.selection.layer;
    store
      .request("attribution_neurons", { ...args, layer }, "attribution-neurons")
      .then((r) => list(neurons, `neurons of layer ${layer} by direct share: `, r, (i) => ({ rwNeuron: `${layer}.${i}`, rwLayer: layer })), () => undefined);
    if (store.saes.length)
      store
        .request("attribution_features", { ...args, sae: store.selection.sae ?? 0 }, "attribution-features")
        .then((r) => list(features, "SAE features by direct share: ", r, (i) => ({ rwFeature: i })), () => undefined);
  }
  neurons.addEventListener("click", (event) => {
    const b = (event.target as HTMLElement).closest("[data-rw-neuron]") as HTMLElement | null;
    if (b) store.select({ layer: Number(b.dataset.rwLayer), neuron: Number(b.dataset.rwNeuron!.split(".")[1]) });
  });
  features.addEventListener("click", (event) => {
    const b = (event.target as HTMLElement).closest("[data-rw-feature]") as HTMLElement | null;
    if (b) store.select({ feature: Number(b.dataset.rwFeature) });
  });
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
    target.set(id);
    fetch();
  });
  store.on("pick-foil", (id: number) => {
    foil.set(id);
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
.rw-root[data-rw-layout="wide"] .rw-side:has(> .rw-attribution-view) { max-height: max(420px, calc(100vh - 140px)); overflow-y: auto; }
.rw-dla-scroll { overflow-x: auto; max-width: 100%; }
.rw-word-box { position: relative; display: inline-block; }
.rw-word { width: 120px; font-family: var(--rw-mono); }
.rw-word-list { position: absolute; z-index: 5; left: 0; top: 100%; margin: 2px 0 0; padding: 2px 0; list-style: none; min-width: 180px; max-height: 240px;
  overflow-y: auto; background: var(--rw-bg); color: var(--rw-fg); border: 1px solid var(--rw-border); border-radius: 4px; box-shadow: 0 2px 6px rgba(0, 0, 0, 0.25); }
.rw-word-option { padding: 1px 8px; cursor: pointer; font-family: var(--rw-mono); white-space: pre; }
.rw-word-option[aria-selected="true"], .rw-word-option:hover { background: var(--rw-fg); color: var(--rw-bg); }
.rw-word-id { color: inherit; opacity: 0.75; }
.rw-dla-layer-table { border-collapse: collapse; font-size: 11px; }
.rw-dla-layer-table td, .rw-dla-layer-table th { padding: 0 6px; text-align: right; font-variant-numeric: tabular-nums; }
.rw-dla-cell { font: 10px var(--rw-mono); border: 1px solid transparent; padding: 2px 3px; cursor: pointer; color: var(--rw-fg); }
.rw-dla-cell.rw-selected { outline: 2px solid var(--rw-select); }
`;
