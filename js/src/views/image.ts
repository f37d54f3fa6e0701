// The input image: the preprocessed pixels the model read (each image over its own min..max). For a CNN, the
// selected channel's feature map (the feature-maps view's selection: stage `layer`, `channel`) enlarged beside it,
// over its stage's min..max as its thumbnail is, and (a checkbox) laid over the image.
import type { Tensor } from "../codec";
import { paintMatrix } from "../colour";
import { h, panel, track } from "../dom";
import { PICTURE_STYLES, paintHeat, paintPicture, sizePicture } from "../picture";
import type { Store } from "../store";

/** CSS pixels on the longer side of the image and of the enlarged map */
const SIDE = 168;
/** the selected channel's colour over the image (amber: seen on black digits' backgrounds and on photos alike) */
const HIGHLIGHT: [number, number, number] = [255, 176, 0];

export function mountImage(el: HTMLElement, store: Store): void {
  const parts = panel("Image", "rw-image-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const input = h("canvas", { class: "rw-picture", data: { rwImage: "" }, attrs: { role: "img", "aria-label": "the input image" } });
  const enlarged = h("canvas", { class: "rw-picture", data: { rwChannelMap: "" } });
  const mapCaption = h("figcaption", { class: "rw-caption" });
  const mapFigure = h("figure", { class: "rw-figure" }, [enlarged, mapCaption]);
  mapFigure.hidden = true;
  const inputCaption = h("figcaption", { class: "rw-caption", text: "input (as the model read it)" });
  // the selected channel laid over the image too (its value as the opacity of the highlight colour)
  const overlay = h("canvas", { class: "rw-picture rw-overlay", data: { rwOverlay: "" } });
  const toggle = h("input", { data: { rwOverlayToggle: "" }, attrs: { type: "checkbox", "aria-label": "show the selected channel over the image" } });
  const toggleLabel = h("label", { class: "rw-caption", text: " over the image" });
  toggleLabel.prepend(toggle);
  toggleLabel.hidden = overlay.hidden = true;
  const over = h("div", { class: "rw-over" }, [input, overlay]);
  body.append(h("div", { class: "rw-figures" }, [h("figure", { class: "rw-figure" }, [over, inputCaption, toggleLabel]), mapFigure]));
  toggle.addEventListener("change", () => {
    overlay.hidden = !toggle.checked || mapFigure.hidden;
  });

  track(parts, store.request("image")).then((reply) => {
    if (!reply) return;
    const pixels = reply.data.pixels as Tensor;
    const [rows, cols, channels] = pixels.shape;
    paintPicture(input, pixels.data, rows, cols, channels);
    sizePicture(input, SIDE);
    input.dataset.rwImage = `${rows}x${cols}x${channels}`;
  }, () => undefined);

  const fetchMap = () => {
    const { layer, channel } = store.selection;
    if (channel === null || channel === undefined) {
      mapFigure.hidden = overlay.hidden = toggleLabel.hidden = true;
      return;
    }
    track(parts, store.request("channel_map", { layer, channel })).then((reply) => {
      if (!reply) return;
      const map = reply.data.map as Tensor;
      const [rows, cols] = map.shape;
      paintMatrix(enlarged, map.data, rows, cols, 255, store.palette);
      sizePicture(enlarged, SIDE);
      enlarged.dataset.rwChannelMap = `${reply.data.layer}.${reply.data.channel}`;
      const range = `${Number(reply.data.min).toFixed(2)}..${Number(reply.data.max).toFixed(2)}`;
      mapCaption.textContent = `channel ${reply.data.layer}.${reply.data.channel} (${rows}\u00d7${cols}), values ${range}`;
      mapFigure.hidden = toggleLabel.hidden = false;
      paintHeat(overlay, map.data, rows, cols, HIGHLIGHT);
      sizePicture(overlay, SIDE);
      overlay.dataset.rwOverlay = enlarged.dataset.rwChannelMap;
      overlay.hidden = !toggle.checked;
    }, () => undefined);
  };
  // only a CNN's sessions have a channel (the feature-maps panel's selection key)
  if ("channel" in store.selection) {
    store.watch(["layer", "channel"], fetchMap);
    store.on("generation", fetchMap);
    fetchMap();
  }
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountImage;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `${PICTURE_STYLES}
.rw-root[data-rw-layout="narrow"] .rw-image-view { order: 1; }
.rw-figures { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.rw-figure { margin: 0; }
.rw-figure figcaption { max-width: 180px; }
`;
