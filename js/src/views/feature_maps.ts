// The CNN Explainer overview: every stage's feature maps as thumbnails (a stage's maps share its min..max, so their
// brightness compares), the first `max_channels` of each stage and a "more" button for the rest. Click a thumbnail
// to select it (stage `layer`, `channel`: the image view shows it enlarged beside the input); shift+click ablates
// that channel (`rw.Ablate(layer, channel=c)`) or restores it, and the classes update.
import type { Tensor } from "../codec";
import { paintMatrix } from "../colour";
import { h, panel, track, wantsIntervention } from "../dom";
import { PICTURE_STYLES } from "../picture";
import type { Reply, Store } from "../store";

/** CSS pixels on a thumbnail's side */
const THUMB = 34;

export function mountFeatureMaps(el: HTMLElement, store: Store): void {
  const parts = panel("Feature maps", "rw-feature-maps-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const stages = (store.shape.stages as number[][] | undefined) ?? [];
  const step = Number(store.shape.max_channels ?? 64);
  const caption = h("div", {
    class: "rw-caption",
    text: "each stage's output, one map per channel (a stage's maps share one scale); click: select and enlarge \u00b7 shift+click: ablate",
  });
  body.appendChild(caption);
  /** per stage: its grid of thumbnails and how many channels it has asked for */
  const rows = stages.map(([channels, height, width], layer) => {
    const grid = h("div", { class: "rw-maps", data: { rwStage: layer } });
    const more = h("button", { class: "rw-more-button", data: { rwMore: layer } });
    const title = h("div", { class: "rw-stage-title", text: `stage ${layer}: ${channels} channels, ${height}\u00d7${width}` });
    body.appendChild(h("div", { class: "rw-stage" }, [title, grid, more]));
    return { grid, more, channels, asked: Math.min(step, channels) };
  });

  const mark = () => {
    const { layer, channel } = store.selection;
    body.querySelectorAll<HTMLElement>("[data-rw-channel]").forEach((cell) => {
      const [l, c] = cell.dataset.rwChannel!.split(".").map(Number);
      const ablated = store.ablated({ layer: l, channel: c });
      cell.classList.toggle("rw-selected", l === layer && c === channel);
      cell.classList.toggle("rw-ablated", ablated);
      cell.title = `channel ${l}.${c}${ablated ? " (ablated)" : ""}\nclick: select \u00b7 shift+click: ${ablated ? "restore" : "ablate"}`;
    });
  };

  const paint = (layer: number, reply: Reply | null) => {
    if (!reply) return;
    const maps = reply.data.maps as Tensor;
    const [n, height, width] = maps.shape;
    const start = reply.data.start as number;
    const row = rows[layer];
    const cells = Array.from(row.grid.children) as HTMLElement[];
    for (let i = 0; i < n; i++) {
      const channel = start + i;
      let cell = cells[channel];
      if (!cell) {
        cell = h("div", { class: "rw-map", data: { rwChannel: `${layer}.${channel}` }, attrs: { role: "button", tabindex: 0 } }, [h("canvas")]);
        row.grid.appendChild(cell);
      }
      const canvas = cell.firstChild as HTMLCanvasElement;
      paintMatrix(canvas, maps.data.subarray(i * height * width, (i + 1) * height * width), height, width, 255, store.palette);
      canvas.style.width = `${THUMB}px`;
      canvas.style.height = `${Math.round((THUMB * height) / width)}px`;
    }
    const left = row.channels - row.grid.children.length;
    row.more.hidden = left <= 0;
    row.more.textContent = `${Math.min(step, left)} more channels (${row.grid.children.length} of ${row.channels} shown)`;
    root.dataset.rwGen = String(reply.gen);
    mark();
  };

  const fetch = (layer: number, start: number) =>
    track(parts, store.request("feature_maps", { layer, start }, `feature_maps-${layer}-${start}`)).then(
      (reply) => paint(layer, reply),
      () => undefined,
    );
  const fetchAll = () => rows.forEach((row, layer) => {
    for (let start = 0; start < row.asked; start += step) fetch(layer, start);
  });

  body.addEventListener("click", (event) => {
    const target = event.target as HTMLElement;
    const more = target.closest("[data-rw-more]") as HTMLElement | null;
    if (more) {
      const layer = Number(more.dataset.rwMore);
      const row = rows[layer];
      fetch(layer, row.asked);
      row.asked = Math.min(row.channels, row.asked + step);
      return;
    }
    const cell = target.closest("[data-rw-channel]") as HTMLElement | null;
    if (!cell) return;
    const [layer, channel] = cell.dataset.rwChannel!.split(".").map(Number);
    store.select({ layer, channel });
    if (store.editable && wantsIntervention(event)) store.toggle({ layer, channel }, cell);
  });
  body.addEventListener("keydown", (event) => {
    const cell = (event.target as HTMLElement).closest("[data-rw-channel]") as HTMLElement | null;
    if (!cell || event.key !== "Enter") return;
    const [layer, channel] = cell.dataset.rwChannel!.split(".").map(Number);
    store.select({ layer, channel });
    if (store.editable && wantsIntervention(event)) store.toggle({ layer, channel }, cell);
  });
  store.on("selection", mark);
  store.on("intervention_list", mark);
  store.on("generation", fetchAll);
  fetchAll();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountFeatureMaps;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `${PICTURE_STYLES}
.rw-feature-maps-view .rw-stage { margin: 4px 0 8px; }
.rw-stage-title { font-size: 11px; color: var(--rw-muted); margin-bottom: 2px; }
.rw-maps { display: flex; flex-wrap: wrap; gap: 2px; }
.rw-map { position: relative; cursor: pointer; line-height: 0; border: 1px solid transparent; }
.rw-map canvas { image-rendering: pixelated; display: block; }
.rw-map.rw-selected { border-color: var(--rw-select); outline: 1px solid var(--rw-select); }
.rw-map.rw-ablated canvas { opacity: .3; }
.rw-map.rw-ablated::after { content: "\\00d7"; position: absolute; top: 6px; right: 1px; color: var(--rw-ablated); font-weight: bold; font-size: 14px; }
.rw-more-button { font-size: 11px; margin-top: 2px; }
`;
