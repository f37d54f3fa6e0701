// Attention over the image (a ViT): the selected head's attention from the selected query (CLS or a patch) as a
// heat grid over the input image, and a layer x head picker coloured by how sharp each head is from that query.
// Click a head to show it, a patch to make it the query (CLS: its button); shift+click a head ablates it, a patch
// ablates that position's attention output at the selected layer (`rw.Ablate(L, positions=[p])`).
import { css, ink, sequential } from "../colour";
import { h, panel, track, wantsIntervention } from "../dom";
import { overlay, overlayStyles } from "../overlay";
import type { InterventionJSON, Reply, Store } from "../store";

/** The patch grid the kernel sends in `shape.patch_grid`: prefix tokens (CLS first), then rows x cols patches. */
export interface PatchGrid {
  prefix: number;
  rows: number;
  cols: number;
}

/** Whether `iv` ablates exactly `position` at `layer` (no head, neuron or channel). */
function isPositionAblation(iv: InterventionJSON, layer: number, position: number): boolean {
  const positions = iv.positions as number[] | null | undefined;
  return (
    iv.type === "ablate" && iv.layer === layer && iv.head == null && iv.neuron == null && iv.channel == null &&
    iv.sae == null && Array.isArray(positions) && positions.length === 1 && positions[0] === position
  );
}

/** The positions ablated at `layer` (each on its own, as a shift+click on a patch adds them). */
export function ablatedPositions(list: InterventionJSON[], layer: number): number[] {
  return list.filter((iv) => iv.type === "ablate" && iv.layer === layer).flatMap((iv) => {
    const p = iv.positions as number[] | null | undefined;
    return Array.isArray(p) && p.length === 1 && isPositionAblation(iv, layer, p[0]) ? [p[0]] : [];
  });
}

/** Toggle the ablation of `position` at `layer` (its attention output there) in `mode`. */
export function togglePosition(list: InterventionJSON[], layer: number, position: number, mode: string): InterventionJSON[] {
  if (list.some((iv) => isPositionAblation(iv, layer, position))) return list.filter((iv) => !isPositionAblation(iv, layer, position));
  return [...list, { type: "ablate", layer, positions: [position], mode }];
}

/** A position's name: CLS (or the other prefix tokens), or the patch's row and column. */
export function positionName(grid: PatchGrid, position: number): string {
  if (position === 0) return "CLS";
  if (position < grid.prefix) return `prefix ${position}`;
  const p = position - grid.prefix;
  return `patch (${Math.floor(p / grid.cols)}, ${p % grid.cols})`;
}

const SIDE = 168;

export function mountVitAttention(el: HTMLElement, store: Store): void {
  const { n_layers, n_heads } = store.shape;
  const grid = store.shape.patch_grid as PatchGrid;
  const parts = panel("Attention over the image", "rw-vit-attention-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const picker = h("div", { class: "rw-vit-heads", attrs: { role: "group", "aria-label": "heads: layer by head" } });
  picker.style.gridTemplateColumns = `auto repeat(${n_heads}, 26px)`;
  const buttons: HTMLButtonElement[][] = [];
  picker.append(h("span"), ...Array.from({ length: n_heads }, (_, head) => h("span", { class: "rw-axis", text: `h${head}` })));
  for (let layer = 0; layer < n_layers; layer++) {
    picker.append(h("span", { class: "rw-axis", text: `L${layer}` }));
    buttons.push([]);
    for (let head = 0; head < n_heads; head++) {
      const button = h("button", { class: "rw-vit-head", text: `${layer}.${head}`, data: { rwHead: `${layer}.${head}` } });
      buttons[layer].push(button);
      picker.append(button);
    }
  }
  const cls = h("button", { class: "rw-small", text: "CLS", data: { rwQuery: 0 }, attrs: { title: "attention from the CLS token" } });
  const picture = overlay(document, SIDE);
  picture.box.dataset.rwVitImage = "";
  picture.box.title = "click a patch: attention from it · shift+click: ablate that position at this layer";
  const caption = h("div", { class: "rw-caption", data: { rwVitCaption: "" } });
  body.append(h("div", { class: "rw-row" }, [picker, h("div", {}, [picture.box, h("div", { class: "rw-row" }, [cls, caption])])]));

  let entropy: Float32Array | null = null;
  let attention: Reply | null = null;
  const paint = () => {
    const sel = store.selection;
    const layer = sel.layer as number, head = sel.vit_head as number, query = sel.query as number;
    const uniform = Math.log(grid.prefix + grid.rows * grid.cols);
    buttons.forEach((row, l) =>
      row.forEach((button, hh) => {
        const chosen = l === layer && hh === head;
        const ablated = store.ablated({ layer: l, head: hh });
        const e = entropy ? entropy[l * n_heads + hh] : uniform;
        const fill = sequential(1 - e / uniform, store.palette);
        button.style.background = css(fill);
        button.style.color = ink(fill); // its own text colour: the theme's would vanish on a light fill in dark
        button.classList.toggle("rw-selected", chosen);
        button.classList.toggle("rw-ablated", ablated);
        button.setAttribute("aria-pressed", String(chosen));
        button.title = `head ${l}.${hh}: entropy ${e.toFixed(2)} nats from ${positionName(grid, query)}${ablated ? ", ablated" : ""}\nclick: show · shift+click: ${ablated ? "restore" : "ablate"}`;
      }),
    );
    cls.classList.toggle("rw-selected", query === 0);
    const ablated = ablatedPositions(store.interventions, layer);
    root.dataset.rwAblatedPositions = ablated.join(",");
    if (!attention) return;
    const d = attention.data;
    picture.paintHeat(d.grid.data, d.rows, d.cols, { palette: store.palette });
    const patches = ablated.filter((p) => p >= grid.prefix).map((p) => p - grid.prefix);
    picture.mark(patches.map((p) => [Math.floor(p / grid.cols), p % grid.cols]), `ablated at block ${layer}: shift+click to restore`);
    const onPrefix = Array.from(d.prefix.data as Float32Array).reduce((a, b) => a + b, 0);
    const cut = ablated.length ? ` · ablated at L${layer}: ${ablated.map((p) => positionName(grid, p)).join(", ")}` : "";
    caption.textContent = `head ${d.layer}.${d.head} from ${positionName(grid, d.query)}: ${(100 * onPrefix).toFixed(0)}% on CLS${cut}`;
    root.dataset.rwShown = `${d.layer}.${d.head}.${d.query}`;
  };
  const fetch = async () => {
    const sel = store.selection;
    const [heads, pattern] = await Promise.all([
      track(parts, store.request("vit_heads", { query: sel.query })).catch(() => null),
      track(parts, store.request("vit_attention", { layer: sel.layer, head: sel.vit_head, query: sel.query })).catch(() => null),
    ]);
    if (heads) entropy = heads.data.entropy.data as Float32Array;
    if (pattern) attention = pattern;
    paint();
  };
  store.request("image", {}, "vit_attention-image").then((reply) => {
    if (!reply) return;
    const [height, width, channels] = reply.data.pixels.shape as number[];
    picture.paintImage(reply.data.pixels.data, height, width, channels);
  }, () => undefined);

  picker.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-head]") as HTMLElement | null;
    if (!button) return;
    const [layer, head] = button.dataset.rwHead!.split(".").map(Number);
    store.select({ layer, vit_head: head });
    if (store.editable && wantsIntervention(event)) store.toggle({ layer, head }, button);
  });
  cls.addEventListener("click", () => store.select({ query: 0 }));
  picture.box.addEventListener("click", (event) => {
    const cell = picture.cellAt(event);
    if (!cell) return;
    const position = grid.prefix + cell[0] * grid.cols + cell[1];
    if (store.editable && wantsIntervention(event)) {
      const mode = (store.model.get("mode") as string | undefined) ?? "zero";
      store.setInterventions(togglePosition(store.interventions, store.selection.layer as number, position, mode), picture.box);
    } else store.select({ query: position });
  });
  store.watch(["layer", "vit_head", "query"], () => void fetch(), paint);
  store.on("intervention_list", paint);
  store.on("generation", () => void fetch());
  void fetch();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountVitAttention;

export const styles = `${overlayStyles}
.rw-vit-heads { display: grid; gap: 2px; align-items: center; font-size: 11px; margin-right: 12px; }
.rw-vit-head { font-size: 10px; padding: 2px 0; border: 1px solid var(--rw-border, #ccc); cursor: pointer; color: inherit; }
.rw-vit-head.rw-selected { outline: 2px solid var(--rw-fg); }
.rw-vit-head.rw-ablated { text-decoration: line-through; opacity: .45; }
.rw-vit-attention-view .rw-image-overlay { cursor: crosshair; }
`;
