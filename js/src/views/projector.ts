// Projector: token representations at the selected layer in 2-D (PCA, computed in the kernel): the prompt's tokens
// (large points) and the tokens of the explorer's `points` texts (small ones), coloured by a label. Clicking a
// prompt token's point selects the token (every view follows); a dataset point says which text and position it is.
// The selected token's point is ringed. The layer is the explorer's: moving the slider here moves every view.
import type { Tensor } from "../codec";
import { css, type RGB, sequential } from "../colour";
import { h, labelled, panel, showToken, track } from "../dom";
import type { Store } from "../store";

interface ProjectorReply {
  xy: Tensor;
  n_prompt: number;
  values: Tensor;
  categories: string[];
  layer: number;
  text?: Tensor;
  pos?: Tensor;
  ids?: Tensor;
  vocab?: Record<string, string>;
}

/** Colours for categories (Tableau 10), readable on light and dark backgrounds. */
const CATEGORY: RGB[] = [
  [78, 121, 167], [242, 142, 43], [225, 87, 89], [118, 183, 178], [89, 161, 79],
  [237, 201, 72], [176, 122, 161], [255, 157, 167], [156, 117, 95], [186, 176, 172],
]; // prettier-ignore
const NONE: RGB = [150, 150, 150];
const WIDTH = 420;
const HEIGHT = 320;
const PAD = 10;

/** The affine map from data coordinates to canvas pixels that fits every point in `width` x `height`. */
export interface Frame {
  x0: number;
  y0: number;
  scale: number;
  width: number;
  height: number;
}

export function frameOf(xy: Tensor, width = WIDTH, height = HEIGHT, pad = PAD): Frame {
  let [minX, maxX, minY, maxY] = [Infinity, -Infinity, Infinity, -Infinity];
  const n = xy.shape[0];
  for (let i = 0; i < n; i++) {
    const x = xy.data[2 * i], y = xy.data[2 * i + 1];
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  if (!(n > 0)) [minX, maxX, minY, maxY] = [0, 1, 0, 1];
  const scale = Math.min((width - 2 * pad) / Math.max(maxX - minX, 1e-9), (height - 2 * pad) / Math.max(maxY - minY, 1e-9));
  // centred; y grows upwards on the page
  const x0 = width / 2 - ((minX + maxX) / 2) * scale;
  const y0 = height / 2 + ((minY + maxY) / 2) * scale;
  return { x0, y0, scale, width, height };
}

export function toPixel(f: Frame, x: number, y: number): [number, number] {
  return [f.x0 + x * f.scale, f.y0 - y * f.scale];
}

/** The point nearest pixel (px, py) within `radius` pixels, prompt points first (they are drawn on top), or -1. */
export function nearestPoint(xy: Tensor, f: Frame, nPrompt: number, px: number, py: number, radius = 8): number {
  const search = (from: number, to: number) => {
    let best = -1, bestD = radius * radius;
    for (let i = from; i < to; i++) {
      const [x, y] = toPixel(f, xy.data[2 * i], xy.data[2 * i + 1]);
      const d = (x - px) ** 2 + (y - py) ** 2;
      if (d <= bestD) [best, bestD] = [i, d];
    }
    return best;
  };
  const prompt = search(0, nPrompt);
  return prompt >= 0 ? prompt : search(nPrompt, xy.shape[0]);
}

/** A point's colour: a category's, or a value in 0..1 on the sequential scale (-1: none, grey). */
export function colourOf(reply: Pick<ProjectorReply, "values" | "categories">, i: number, hi: RGB = [30, 85, 205]): RGB {
  const v = reply.values.data[i];
  if (reply.categories.length) return CATEGORY[v % CATEGORY.length];
  if (v < 0) return NONE;
  return sequential(0.15 + 0.85 * v, { name: "light", lo: [235, 235, 235], hi, neg: hi });
}

export function mountProjector(el: HTMLElement, store: Store): void {
  const { n_layers, projector_colours: colours = ["source"] } = store.shape as { n_layers: number; projector_colours?: string[] };
  const parts = panel("Projector", "rw-projector-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const layerInput = h("input", { title: "layer", data: { rwProjectorLayer: "" }, attrs: { "aria-label": "layer" } });
  layerInput.type = "range";
  layerInput.min = "0";
  layerInput.max = String(n_layers - 1);
  layerInput.step = "1";
  const layerLabel = h("span", { class: "rw-num" });
  const colourSelect = h("select", { data: { rwProjectorColour: "" } }, colours.map((c, i) => h("option", { text: c, attrs: { value: String(i) } })));
  const canvas = h("canvas", { class: "rw-projector", attrs: { role: "img", "aria-label": "token representations in two dimensions; click a prompt token's point to select it" } });
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  canvas.style.width = `${WIDTH}px`;
  canvas.style.height = `${HEIGHT}px`;
  canvas.style.cursor = "crosshair";
  const legend = h("div", { class: "rw-legend" });
  const info = h("div", { class: "rw-info", data: { rwProjectorInfo: "" } });
  const caption = h("div", { class: "rw-caption", text: "PCA of resid_post at the layer; large points: this prompt's tokens" });
  body.append(
    h("div", { class: "rw-row" }, [labelled("layer", layerInput), layerLabel, labelled("colour", colourSelect)]),
    caption, canvas, legend, info,
  );
  let shown: ProjectorReply | null = null;
  let frame: Frame | null = null;
  let asked = 0; // when the layer shown last changed (performance.now()), for the repaint time

  const describe = (i: number): string => {
    if (!shown) return "";
    if (i < shown.n_prompt) return `prompt position ${i}: "${showToken(store.tokens[i] ?? "")}"`;
    const j = i - shown.n_prompt;
    const id = shown.ids ? shown.ids.data[j] : -1;
    const word = shown.vocab?.[String(id)] ?? String(id);
    return `text ${shown.text?.data[j]}, position ${shown.pos?.data[j]}: "${showToken(word)}"`;
  };

  const paint = () => {
    if (!shown) return;
    const reply = shown;
    frame = frameOf(reply.xy);
    const n = reply.xy.shape[0];
    const ctx = canvas.getContext("2d");
    const hi = store.palette.hi;
    if (ctx) {
      ctx.clearRect(0, 0, WIDTH, HEIGHT);
      const byColour = new Map<string, number[]>(); // one fillStyle per colour: 20,000 points in a few ms
      for (let i = reply.n_prompt; i < n; i++) {
        const c = css(colourOf(reply, i, hi));
        const list = byColour.get(c) ?? [];
        list.push(i);
        byColour.set(c, list);
      }
      for (const [c, list] of byColour) {
        ctx.fillStyle = c;
        for (const i of list) {
          const [x, y] = toPixel(frame, reply.xy.data[2 * i], reply.xy.data[2 * i + 1]);
          ctx.fillRect(x - 1, y - 1, 2.5, 2.5);
        }
      }
      for (let i = 0; i < reply.n_prompt; i++) {
        const [x, y] = toPixel(frame, reply.xy.data[2 * i], reply.xy.data[2 * i + 1]);
        ctx.beginPath();
        ctx.arc(x, y, 4.5, 0, 2 * Math.PI);
        ctx.fillStyle = css(colourOf(reply, i, hi));
        ctx.fill();
        ctx.strokeStyle = "#222";
        ctx.lineWidth = 1;
        ctx.stroke();
      }
      const t = store.selection.token;
      if (t < reply.n_prompt) {
        const [x, y] = toPixel(frame, reply.xy.data[2 * t], reply.xy.data[2 * t + 1]);
        for (const [colour, width] of [["#fff", 5], ["#111", 2]] as const) { // a dark ring on a light halo: seen on any point
          ctx.beginPath();
          ctx.arc(x, y, 9, 0, 2 * Math.PI);
          ctx.strokeStyle = colour;
          ctx.lineWidth = width;
          ctx.stroke();
        }
      }
    }
    // where the prompt's points are (for tests and automation: points have no elements of their own)
    const points = [];
    for (let i = 0; i < reply.n_prompt; i++) points.push(toPixel(frame, reply.xy.data[2 * i], reply.xy.data[2 * i + 1]).map((v) => Math.round(v * 10) / 10));
    canvas.dataset.rwPromptPoints = JSON.stringify(points);
    canvas.dataset.rwSelectedPoint = String(store.selection.token);
    root.dataset.rwLayerShown = String(reply.layer);
    root.dataset.rwPoints = String(n);
    legend.replaceChildren(
      ...(reply.categories.length
        ? reply.categories.map((c, i) => legendItem(c, i))
        : [h("span", { text: `${colours[Number(colourSelect.value)]}: light 0 \u2192 dark 1${reply.values.data.some((v) => v < 0) ? "; grey: not probed at this layer" : ""}` })]),
    );
    if (asked && reply.layer === store.selection.layer) {
      root.dataset.rwPaintMs = String(Math.round(performance.now() - asked));
      asked = 0;
    }
  };

  const legendItem = (name: string, i: number) => {
    const span = h("span", { class: "rw-legend-item", text: `\u25cf ${name}  ` });
    span.style.color = css(CATEGORY[i % CATEGORY.length]);
    return span;
  };

  const fetch = async () => {
    const layer = store.selection.layer;
    layerInput.value = String(layer);
    layerLabel.textContent = `L${layer}`;
    const reply = await track(parts, store.request("projector", { layer, colour: Number(colourSelect.value) })).catch(() => null);
    if (!reply) return;
    shown = reply.data as unknown as ProjectorReply;
    paint();
  };

  canvas.addEventListener("click", (event) => {
    if (!shown || !frame) return;
    const box = canvas.getBoundingClientRect();
    const sx = box.width ? WIDTH / box.width : 1;
    const sy = box.height ? HEIGHT / box.height : 1;
    const i = nearestPoint(shown.xy, frame, shown.n_prompt, (event.clientX - box.left) * sx, (event.clientY - box.top) * sy);
    if (i < 0) return;
    info.textContent = describe(i);
    if (i < shown.n_prompt) store.select({ token: i });
  });
  canvas.addEventListener("mousemove", (event) => {
    if (!shown || !frame) return;
    const box = canvas.getBoundingClientRect();
    const i = nearestPoint(shown.xy, frame, shown.n_prompt, event.clientX - box.left, event.clientY - box.top, 6);
    canvas.title = i >= 0 ? describe(i) : "";
  });
  layerInput.addEventListener("input", () => store.select({ layer: Number(layerInput.value) }));
  colourSelect.addEventListener("change", () => void fetch());
  store.watch(["layer"], () => {
    asked = performance.now();
    void fetch();
  }, () => {
    if (shown && shown.layer === store.selection.layer) paint(); // a new token: ring its point
  });
  store.on("generation", () => void fetch());
  store.on("theme", paint);
  void fetch();
}
