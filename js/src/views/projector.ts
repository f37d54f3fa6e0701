// Projector: token representations at the selected layer in 2-D (PCA or UMAP, computed in the kernel): the prompt's tokens
// (large points) and the tokens of the explorer's `points` texts (small ones), coloured by a label, a probe's score
// or an SAE feature's activation (the feature chosen here is the explorer's). Clicking a prompt token's point selects
// the token (every view follows); a dataset point says which text and position it is. Dragging draws a lasso: the
// points in it become the selection's `tokens` (prompt positions) and `points` ([text, position] pairs); a click
// away from every point clears it. The selected token's point is ringed; with a lasso, the points outside it are
// faded, those inside it ringed, and its outline stays (on the layer it was drawn at) until it is cleared. The texts'
// points are as large as the prompt's when there are a few dozen, smaller when thousands; category hues keep a
// luminance that reads on light and dark pages. The layer is the explorer's: moving the slider here moves every view.
import { encodeRows, type Tensor } from "../codec";
import { css, readable, type RGB, sequential } from "../colour";
import { h, labelled, panel, showToken, track } from "../dom";
import { type Frame, frameOf, lassoed, marksOf, nearestPoint, type Pixel, pointCount, pointRadius, PROMPT_RADIUS, toPixel } from "../plane";
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
  /** an SAE feature's colouring: the activation that `values` 1 stands for */
  value_max?: number;
}

/** A lasso shorter than this many pixels across is a click. */
const LASSO_MIN = 4;

/** Colours for categories (Tableau 10), readable on light and dark backgrounds. */
const CATEGORY: RGB[] = [
  [78, 121, 167], [242, 142, 43], [225, 87, 89], [118, 183, 178], [89, 161, 79],
  [237, 201, 72], [176, 122, 161], [255, 157, 167], [156, 117, 95], [186, 176, 172],
]; // prettier-ignore
const NONE: RGB = [150, 150, 150];

/** Up to this many lassoed texts' points are ringed. */
const RINGED = 300;
const WIDTH = 420;
const HEIGHT = 320;
const PAD = 10;

/** The SAE a colouring reads ("SAE 1 feature": 1), or null. */
export function saeOf(colouring: string | undefined): number | null {
  const m = /^SAE (\d+) feature$/.exec(colouring ?? "");
  return m ? Number(m[1]) : null;
}

/** Category `i` of `k`: Tableau 10 for up to ten, else `k` hues evenly round the colour wheel (neighbouring
 * categories get neighbouring hues: twelve months make a ring of colour); either kept readable on any theme. */
export function categoryColour(i: number, k: number): RGB {
  if (k <= CATEGORY.length) return readable(CATEGORY[i % CATEGORY.length]);
  const hue = (6 * i) / k, x = 1 - Math.abs((hue % 2) - 1);
  const [r, g, b] = [[1, x, 0], [x, 1, 0], [0, 1, x], [0, x, 1], [x, 0, 1], [1, 0, x]][Math.floor(hue) % 6];
  return readable([r, g, b].map((c) => Math.round(255 * c)) as RGB);
}

/** A point's colour: a category's, or a value in 0..1 on the sequential scale (-1: none, grey). */
export function colourOf(reply: Pick<ProjectorReply, "values" | "categories">, i: number, hi: RGB = [30, 85, 205]): RGB {
  const v = reply.values.data[i];
  if (reply.categories.length) return categoryColour(v, reply.categories.length);
  if (v < 0) return NONE;
  return sequential(0.15 + 0.85 * v, { name: "light", lo: [235, 235, 235], hi, neg: hi });
}

export function mountProjector(el: HTMLElement, store: Store): void {
  const { n_layers, projector_colours: colours = ["source"], projector_colour: first = 0 } = store.shape as {
    n_layers: number; projector_colours?: string[]; projector_colour?: number;
  };
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
  // the feature an SAE colouring shows: the explorer's selected feature (choosing one here selects it everywhere)
  colourSelect.value = String(first);
  const featureInput = h("input", { title: "SAE feature", data: { rwProjectorFeature: "" }, attrs: { "aria-label": "SAE feature" } });
  featureInput.type = "number";
  featureInput.min = "0";
  featureInput.step = "1";
  featureInput.style.width = "6em";
  const featureLabel = labelled("feature", featureInput);
  const canvas = h("canvas", { class: "rw-projector", attrs: { role: "img", "aria-label": "token representations in two dimensions; click a prompt token's point to select it, drag a lasso to select many" } });
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  canvas.style.width = `${WIDTH}px`;
  canvas.style.height = `${HEIGHT}px`;
  canvas.style.cursor = "crosshair";
  const legend = h("div", { class: "rw-legend" });
  const info = h("div", { class: "rw-info", data: { rwProjectorInfo: "" } });
  const lassoInfo = h("div", { class: "rw-info", data: { rwProjectorLasso: "" } });
  const projection = (store.shape as { projector_projection?: string }).projector_projection ?? "PCA";
  const caption = h("div", { class: "rw-caption", text: `${projection} of resid_post at the layer; large points: this prompt's tokens; drag to lasso points` });
  body.append(
    h("div", { class: "rw-row" }, [labelled("layer", layerInput), layerLabel, labelled("colour", colourSelect), featureLabel]),
    caption, canvas, legend, lassoInfo, info,
  );
  let shown: ProjectorReply | null = null;
  let frame: Frame | null = null;
  let asked = 0; // when the layer shown last changed (performance.now()), for the repaint time
  let lasso: Pixel[] | null = null; // the lasso being drawn, in canvas pixels
  let lassoEnded = false; // a lasso just ended: the click that follows its mouseup is not a click
  let outline: { polygon: Pixel[]; layer: number } | null = null; // the lasso made, drawn until it is cleared

  const sae = () => saeOf(colours[Number(colourSelect.value)]);
  /** The feature the colouring asks for: the selected feature of its SAE, else 0. */
  const feature = () => {
    const which = sae(), sel = store.selection;
    return which !== null && sel.sae === which && sel.feature != null ? sel.feature : 0;
  };
  const showFeature = () => {
    featureLabel.hidden = sae() === null;
    const which = sae();
    if (which !== null) {
      featureInput.max = String((store.saes[which]?.d_sae ?? 1) - 1);
      featureInput.value = String(feature());
    }
  };

  const describe = (i: number): string => {
    if (!shown) return "";
    if (i < shown.n_prompt) return `prompt position ${i}: "${showToken(store.tokens[i] ?? "")}"`;
    const j = i - shown.n_prompt;
    const id = shown.ids ? shown.ids.data[j] : -1;
    const word = shown.vocab?.[String(id)] ?? String(id);
    return `text ${shown.text?.data[j]}, position ${shown.pos?.data[j]}: "${showToken(word)}"`;
  };

  const ring = (ctx: CanvasRenderingContext2D, x: number, y: number, radius: number, rings: readonly (readonly [string, number])[]) => {
    for (const [colour, width] of rings) {
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, 2 * Math.PI);
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      ctx.stroke();
    }
  };

  const paint = () => {
    if (!shown) return;
    const reply = shown;
    frame = frameOf(reply.xy, WIDTH, HEIGHT, PAD);
    const n = reply.xy.shape[0];
    const ctx = canvas.getContext("2d");
    const hi = store.palette.hi;
    const sel = store.selection;
    const m = n - reply.n_prompt;
    const marks = marksOf(sel, reply, m);
    const tokensIn = new Set(sel.tokens ?? []);
    const lassoing = tokensIn.size > 0 || pointCount(sel) > 0;
    if (!lassoing) outline = null;
    const dark = store.palette.name === "dark";
    const ink = dark ? "#eee" : "#111", halo = dark ? "#111" : "#fff";
    const radius = pointRadius(m);
    let marked = 0;
    for (let j = 0; j < m; j++) marked += marks[j];
    const xyOf = (i: number) => toPixel(frame as Frame, reply.xy.data[2 * i], reply.xy.data[2 * i + 1]);
    if (ctx) {
      ctx.clearRect(0, 0, WIDTH, HEIGHT);
      // the texts' points by colour (one fillStyle per colour: 20,000 points in a few ms); with a lasso those
      // outside it first and faded, those inside it on top, larger and ringed
      for (const inside of lassoing ? [0, 1] : [0]) {
        ctx.globalAlpha = lassoing && !inside ? 0.15 : 1;
        // up to RINGED lassoed points are enlarged and ringed; thousands would merge into a blot, so they are only
        // drawn in full over the faded rest
        const ringed = inside && marked <= RINGED;
        const r = ringed ? Math.max(radius, 2.5) : radius;
        const byColour = new Map<string, number[]>();
        for (let j = 0; j < m; j++) {
          if (lassoing && marks[j] !== inside) continue;
          const c = css(colourOf(reply, reply.n_prompt + j, hi));
          const list = byColour.get(c) ?? [];
          list.push(reply.n_prompt + j);
          byColour.set(c, list);
        }
        for (const [c, list] of byColour) {
          ctx.fillStyle = c;
          ctx.strokeStyle = inside ? ink : halo;
          ctx.lineWidth = inside ? 1.5 : 1;
          const stroke = ringed || r >= PROMPT_RADIUS; // a halo parts a few large points that overlap
          if (r < 2) {
            for (const i of list) {
              const [x, y] = xyOf(i);
              ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
            }
          } else if (list.length > 200) {
            // thousands of discs (a large lasso) as one path: one fill and one stroke, not one each
            ctx.beginPath();
            for (const i of list) {
              const [x, y] = xyOf(i);
              ctx.moveTo(x + r, y);
              ctx.arc(x, y, r, 0, 2 * Math.PI);
            }
            ctx.fill();
            if (stroke) ctx.stroke();
          } else {
            for (const i of list) {
              const [x, y] = xyOf(i);
              ctx.beginPath();
              ctx.arc(x, y, r, 0, 2 * Math.PI);
              ctx.fill();
              if (stroke) ctx.stroke();
            }
          }
        }
      }
      for (let i = 0; i < reply.n_prompt; i++) {
        const [x, y] = xyOf(i);
        ctx.globalAlpha = lassoing && !tokensIn.has(i) ? 0.35 : 1;
        ctx.beginPath();
        ctx.arc(x, y, PROMPT_RADIUS, 0, 2 * Math.PI);
        ctx.fillStyle = css(colourOf(reply, i, hi));
        ctx.fill();
        ctx.strokeStyle = ink;
        ctx.lineWidth = 1;
        ctx.stroke();
      }
      ctx.globalAlpha = 1;
      for (const t of tokensIn) {
        if (t >= reply.n_prompt) continue;
        const [x, y] = xyOf(t);
        ring(ctx, x, y, 7, [[halo, 3], [ink, 1]]);
      }
      const t = sel.token;
      if (t < reply.n_prompt) {
        const [x, y] = xyOf(t);
        ring(ctx, x, y, 9, [[halo, 5], [ink, 2]]); // a dark ring on a light halo: seen on any point
      }
      const path = lasso ?? (outline && outline.layer === reply.layer ? outline.polygon : null);
      if (path && path.length > 1) {
        ctx.beginPath();
        ctx.moveTo(...path[0]);
        for (const p of path.slice(1)) ctx.lineTo(...p);
        ctx.closePath();
        ctx.setLineDash?.([4, 3]);
        ctx.strokeStyle = ink;
        ctx.lineWidth = 1;
        ctx.stroke();
        ctx.setLineDash?.([]);
      }
    }
    // where the prompt's points are, and the frame (for tests and automation: points have no elements of their own)
    const points = [];
    for (let i = 0; i < reply.n_prompt; i++) points.push(toPixel(frame, reply.xy.data[2 * i], reply.xy.data[2 * i + 1]).map((v) => Math.round(v * 10) / 10));
    canvas.dataset.rwPromptPoints = JSON.stringify(points);
    canvas.dataset.rwFrame = JSON.stringify({ x0: frame.x0, y0: frame.y0, scale: frame.scale });
    canvas.dataset.rwSelectedPoint = String(sel.token);
    canvas.dataset.rwLassoed = `${(sel.tokens ?? []).length},${pointCount(sel)}`;
    // what is drawn emphasised: the prompt's points and the texts' inside the lasso
    canvas.dataset.rwMarked = `${[...tokensIn].filter((t) => t < reply.n_prompt).length},${marked}`;
    canvas.dataset.rwPointRadius = radius.toFixed(2);
    canvas.dataset.rwOutline = String(Boolean(outline && outline.layer === reply.layer));
    lassoInfo.textContent = lassoing
      ? `lasso: ${tokensIn.size} of the prompt's tokens, ${marked} of the texts' points (${marked <= RINGED ? "ringed" : "the others faded"}); click away from the points to clear it`
      : "";
    root.dataset.rwLayerShown = String(reply.layer);
    root.dataset.rwPoints = String(n);
    const which = sae();
    const scale = which !== null && reply.value_max !== undefined ? ` ${feature()}: light 0 \u2192 dark ${reply.value_max.toPrecision(3)}` : ": light 0 \u2192 dark 1";
    legend.replaceChildren(
      ...(reply.categories.length
        ? reply.categories.map((c, i) => legendItem(c, i, reply.categories.length))
        : [h("span", { text: `${colours[Number(colourSelect.value)]}${scale}${reply.values.data.some((v) => v < 0) ? "; grey: not probed at this layer" : ""}` })]),
    );
    if (asked && reply.layer === store.selection.layer) {
      root.dataset.rwPaintMs = String(Math.round(performance.now() - asked));
      asked = 0;
    }
  };

  // the colour goes on a swatch, the name stays in the legend's own colour (a light hue's text would not read)
  const legendItem = (name: string, i: number, k: number) => {
    const swatch = h("span", { class: "rw-swatch" });
    swatch.style.background = css(categoryColour(i, k));
    return h("span", { class: "rw-legend-item" }, [swatch, h("span", { text: `${name}  ` })]);
  };

  const fetch = async () => {
    const layer = store.selection.layer;
    layerInput.value = String(layer);
    layerLabel.textContent = `L${layer}`;
    showFeature();
    const args = { layer, colour: Number(colourSelect.value), feature: feature() };
    const reply = await track(parts, store.request("projector", args)).catch(() => null);
    if (!reply) return;
    shown = reply.data as unknown as ProjectorReply;
    paint();
  };

  /** Where a mouse event is, in canvas pixels. */
  const at = (event: MouseEvent): Pixel => {
    const box = canvas.getBoundingClientRect();
    const sx = box.width ? WIDTH / box.width : 1;
    const sy = box.height ? HEIGHT / box.height : 1;
    return [(event.clientX - box.left) * sx, (event.clientY - box.top) * sy];
  };

  const endLasso = () => {
    const polygon = lasso;
    lasso = null;
    if (!polygon || !shown || !frame) return;
    const xs = polygon.map((p) => p[0]), ys = polygon.map((p) => p[1]);
    if (Math.max(...xs) - Math.min(...xs) < LASSO_MIN && Math.max(...ys) - Math.min(...ys) < LASSO_MIN) {
      paint();
      return; // a click
    }
    lassoEnded = true;
    const { tokens, rows } = lassoed(shown, frame, polygon);
    const token = tokens.length && !tokens.includes(store.selection.token) ? { token: tokens[0] } : {};
    outline = { polygon, layer: shown.layer };
    const points = rows.length ? encodeRows(rows, shown.xy.shape[0] - shown.n_prompt) : [];
    store.select({ tokens, points, ...token });
    paint();
  };

  canvas.addEventListener("mousedown", (event) => {
    if (event.button !== 0 || !shown) return;
    lasso = [at(event)];
    lassoEnded = false;
  });
  canvas.addEventListener("mouseup", endLasso);
  canvas.addEventListener("mouseleave", endLasso);
  canvas.addEventListener("click", (event) => {
    if (lassoEnded) {
      lassoEnded = false;
      return;
    }
    if (!shown || !frame) return;
    const [px, py] = at(event);
    const i = nearestPoint(shown.xy, frame, shown.n_prompt, px, py);
    if (i < 0) {
      const sel = store.selection;
      if (sel.tokens?.length || pointCount(sel)) {
        info.textContent = "lasso cleared";
        store.select({ tokens: [], points: [] });
      }
      return;
    }
    info.textContent = describe(i);
    if (i < shown.n_prompt) store.select({ token: i });
  });
  canvas.addEventListener("mousemove", (event) => {
    if (!shown || !frame) return;
    const [px, py] = at(event);
    if (lasso) {
      const [lx, ly] = lasso[lasso.length - 1];
      if ((px - lx) ** 2 + (py - ly) ** 2 >= 4) {
        lasso.push([px, py]);
        paint();
      }
      return;
    }
    const i = nearestPoint(shown.xy, frame, shown.n_prompt, px, py, 6);
    canvas.title = i >= 0 ? describe(i) : "";
  });
  layerInput.addEventListener("input", () => store.select({ layer: Number(layerInput.value) }));
  colourSelect.addEventListener("change", () => void fetch());
  featureInput.addEventListener("change", () => {
    const which = sae(), value = Math.floor(Number(featureInput.value));
    const d = store.saes[which ?? -1]?.d_sae ?? 0;
    if (which === null || !(value >= 0 && value < d)) {
      featureInput.value = String(feature());
      return;
    }
    store.select({ sae: which, feature: value });
  });
  store.watch(["layer"], () => {
    asked = performance.now();
    void fetch();
  }, () => {
    if (shown && shown.layer === store.selection.layer) paint(); // a new token or lasso: ring its points
  });
  store.watch(["sae", "feature"], () => {
    if (sae() !== null) void fetch();
  });
  store.on("generation", () => void fetch());
  store.on("theme", paint);
  void fetch();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountProjector;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="wide"] .rw-side:has(.rw-projector-view) { position: static; } /* taller than a screen: scrolls */
.rw-swatch { display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%; margin: 0 0.3em 0 0.6em; vertical-align: baseline; }
`;
