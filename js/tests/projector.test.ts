// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { mount } from "../src/widget";
import { frameOf, insidePolygon, lassoed, nearestPoint, pointRadius, toPixel } from "../src/plane";
import { categoryColour, colourOf, saeOf } from "../src/views/projector";
import { countRows, decodeRows, encodeRows } from "../src/codec";
import { contrast, readable } from "../src/colour";
import { answer, FakeModel, float32, header, int32, settle, traits } from "./fake";

function setup(colours = ["source", "position", "label"], extra: Record<string, unknown> = {}) {
  const model = new FakeModel(
    traits(3, { views: ["tokens", "projector"], shape: { ...traits(3).shape, projector_colours: colours }, ...extra }),
  );
  const el = document.createElement("div");
  document.body.appendChild(el);
  const store = mount(model, el);
  return { model, el, store };
}

/** Three prompt points and two dataset points, categories by source. */
function reply(layer: number, xy = [0, 0, 1, 0, 0, 1, -1, -1, 2, 2]) {
  return {
    data: {
      xy: header("float32", [5, 2], 0),
      n_prompt: 3,
      values: header("float32", [5], 1),
      categories: ["prompt", "texts"],
      layer,
      text: header("int32", [2], 2),
      pos: header("int32", [2], 3),
      ids: header("int32", [2], 4),
      vocab: { "7": "cat", "8": "dog" },
    },
    buffers: [float32(xy), float32([0, 0, 0, 1, 1]), int32([0, 4]), int32([1, 2]), int32([7, 8])],
  };
}

describe("projector view", () => {
  it("asks for the explorer's layer, places the prompt's points, and a click on one selects its token", async () => {
    const { model, el, store } = setup();
    expect(model.sent.find((m) => m.what === "projector")).toMatchObject({ layer: 0, colour: 0 });
    const r = reply(0);
    answer(model, "projector", r.data, r.buffers);
    await settle();
    const canvas = el.querySelector("canvas.rw-projector") as HTMLCanvasElement;
    const points = JSON.parse(canvas.dataset.rwPromptPoints!) as [number, number][];
    expect(points).toHaveLength(3);
    expect(points[1][0]).toBeGreaterThan(points[0][0]); // x grows to the right
    expect(points[2][1]).toBeLessThan(points[0][1]); // y grows upwards
    canvas.dispatchEvent(new MouseEvent("click", { bubbles: true, clientX: points[1][0], clientY: points[1][1] }));
    expect(store.selection.token).toBe(1);
    expect(el.querySelector("[data-rw-projector-info]")!.textContent).toBe('prompt position 1: "t1"');
    expect(canvas.dataset.rwSelectedPoint).toBe("1");
    const items = Array.from(el.querySelectorAll<HTMLElement>(".rw-legend-item"));
    expect(items.map((e) => e.textContent!.trim())).toEqual(["prompt", "texts"]);
    // each colour on its swatch, none on the text (a light hue's text would not read)
    expect(items.map((e) => e.querySelector<HTMLElement>(".rw-swatch")!.style.background !== "")).toEqual([true, true]);
    expect(items.every((e) => e.style.color === "")).toBe(true);
  });

  it("follows the layer both ways: its slider selects the layer for every view, and a new layer is fetched", async () => {
    const { model, el, store } = setup();
    answer(model, "projector", reply(0).data, reply(0).buffers);
    await settle();
    const slider = el.querySelector("[data-rw-projector-layer]") as HTMLInputElement;
    slider.value = "1";
    slider.dispatchEvent(new Event("input"));
    expect(store.selection.layer).toBe(1);
    const asked = model.sent.filter((m) => m.what === "projector");
    expect(asked[asked.length - 1]).toMatchObject({ layer: 1 });
    const r = reply(1);
    answer(model, "projector", r.data, r.buffers);
    await settle();
    const view = el.querySelector(".rw-projector-view") as HTMLElement;
    expect(view.dataset.rwLayerShown).toBe("1");
    expect(Number(view.dataset.rwPaintMs)).toBeGreaterThanOrEqual(0);
    // a change of colouring asks again at the same layer
    const select = el.querySelector("[data-rw-projector-colour]") as HTMLSelectElement;
    select.value = "1";
    select.dispatchEvent(new Event("change"));
    const last = model.sent.filter((m) => m.what === "projector").pop();
    expect(last).toMatchObject({ layer: 1, colour: 1 });
  });

  it("maps points to pixels and back, prompt points first; colours by category or value", () => {
    const xy = { dtype: "float32" as const, shape: [3, 2], data: new Float32Array([0, 0, 10, 10, 0.01, 0]) };
    const f = frameOf(xy, 100, 100, 10);
    expect(toPixel(f, 0, 0)).toEqual([10, 90]);
    expect(toPixel(f, 10, 10)).toEqual([90, 10]);
    expect(nearestPoint(xy, f, 1, 10, 90)).toBe(0); // the prompt's point wins over the dataset point beneath it
    expect(nearestPoint(xy, f, 1, 89, 11)).toBe(1);
    expect(nearestPoint(xy, f, 1, 50, 50)).toBe(-1);
    const values = { dtype: "float32" as const, shape: [2], data: new Float32Array([1, -1]) };
    expect(colourOf({ values, categories: ["a", "b"] }, 0)).toEqual(readable([242, 142, 43]));
    expect(colourOf({ values, categories: [] }, 1)).toEqual([150, 150, 150]);
    // more than ten categories: hues evenly round the wheel, each its own, neighbours alike
    const ring = Array.from({ length: 13 }, (_, i) => categoryColour(i, 13));
    expect(new Set(ring.map(String)).size).toBe(13);
    expect(ring[0][0]).toBeGreaterThan(3 * Math.max(ring[0][1], ring[0][2])); // red first
    const gap = (a: number[], b: number[]) => Math.hypot(...a.map((v, i) => v - b[i]));
    expect(gap(ring[0], ring[1])).toBeLessThan(gap(ring[0], ring[6]));
    expect(categoryColour(3, 10)).toEqual(readable([118, 183, 178])); // up to ten: Tableau 10
    // every hue reads at 3:1 or more on white and on JupyterLab's dark panels, the twelve months' yellows included
    const dark: [number, number, number] = [33, 33, 33], white: [number, number, number] = [255, 255, 255];
    for (const k of [2, 10, 12, 13])
      for (let i = 0; i < k; i++) {
        const c = categoryColour(i, k);
        expect(Math.min(contrast(c, white), contrast(c, dark)), `${i} of ${k}: ${c}`).toBeGreaterThanOrEqual(3);
      }
    expect(contrast([237, 201, 72], white)).toBeLessThan(2); // Tableau's yellow as it was
    expect(readable([237, 201, 72])[2]).toBeLessThan(readable([237, 201, 72])[0]); // still a yellow, darker
    // the texts' points: as large as the prompt's for a dozen, smaller for thousands
    expect(pointRadius(12)).toBe(4.5);
    expect(pointRadius(500)).toBeLessThan(2.5);
    expect(pointRadius(20_000)).toBe(1.25);
  });

  it("hit-tests a lasso polygon by the even-odd rule, concave ones included", () => {
    // a "C" opening to the right: its notch (x 4..10, y 4..6) is outside
    const c: [number, number][] = [[0, 0], [10, 0], [10, 4], [4, 4], [4, 6], [10, 6], [10, 10], [0, 10]];
    expect(insidePolygon(c, 2, 5)).toBe(true); // the back of the C
    expect(insidePolygon(c, 7, 2)).toBe(true); // its top arm
    expect(insidePolygon(c, 7, 8)).toBe(true); // its bottom arm
    expect(insidePolygon(c, 7, 5)).toBe(false); // the notch
    expect(insidePolygon(c, 11, 5)).toBe(false);
    expect(insidePolygon(c, -1, 5)).toBe(false);
    expect(insidePolygon(c, 5, -0.5)).toBe(false);
    // a self-crossing bow tie: each lobe is inside, the gaps above and below the crossing are not
    const bow: [number, number][] = [[0, 0], [10, 10], [10, 0], [0, 10]];
    expect(insidePolygon(bow, 1, 5)).toBe(true);
    expect(insidePolygon(bow, 9, 5)).toBe(true);
    expect(insidePolygon(bow, 5, 2)).toBe(false);
    expect(insidePolygon([[0, 0], [1, 1]], 0.5, 0.5)).toBe(false); // a line encloses nothing
    // in data space: the prompt's positions and the texts' (text, position) pairs inside
    const xy = { dtype: "float32" as const, shape: [4, 2], data: new Float32Array([0, 0, 10, 10, 1, 1, 9, 1]) };
    const text = { dtype: "int32" as const, shape: [2], data: new Int32Array([3, 5]) };
    const pos = { dtype: "int32" as const, shape: [2], data: new Int32Array([2, 7]) };
    const f = frameOf(xy, 100, 100, 10); // data (0,0) at pixel (10,90), (10,10) at (90,10)
    const lower: [number, number][] = [[0, 100], [30, 100], [30, 70], [0, 70]]; // around data (0,0) and (1,1)
    expect(lassoed({ xy, n_prompt: 2, text, pos }, f, lower)).toEqual({ tokens: [0], rows: [0], points: [[3, 2]] });
    const right: [number, number][] = [[70, 0], [100, 0], [100, 90], [70, 90]]; // around (10,10) and (9,1)
    expect(lassoed({ xy, n_prompt: 2, text, pos }, f, right)).toEqual({ tokens: [1], rows: [1], points: [[5, 7]] });
    expect(lassoed({ xy, n_prompt: 2, text, pos }, f, right.slice(0, 2))).toEqual({ tokens: [], rows: [], points: [] });
  });

  it("a drag lassoes points into the selection, the tokens view marks them, a click away clears it", async () => {
    const { model, el, store } = setup();
    answer(model, "projector", reply(0).data, reply(0).buffers);
    await settle();
    const canvas = el.querySelector("canvas.rw-projector") as HTMLCanvasElement;
    const points = JSON.parse(canvas.dataset.rwPromptPoints!) as [number, number][];
    const frame = JSON.parse(canvas.dataset.rwFrame!) as { x0: number; y0: number; scale: number };
    const px = (x: number, y: number) => [frame.x0 + x * frame.scale, frame.y0 - y * frame.scale];
    expect(px(1, 0)).toEqual(points[1]);
    // a box around data (1, 0) and the text point at (2, 2): x 0.5..2.5, y -0.5..2.5
    const [x0, y0] = px(0.5, -0.5), [x1, y1] = px(2.5, 2.5);
    const mouse = (type: string, x: number, y: number) =>
      canvas.dispatchEvent(new MouseEvent(type, { bubbles: true, clientX: x, clientY: y, button: 0 }));
    mouse("mousedown", x0, y0);
    for (const [x, y] of [[x1, y0], [x1, y1], [x0, y1], [x0, y0 - 1]]) mouse("mousemove", x, y);
    mouse("mouseup", x0, y0 - 1);
    mouse("click", x0, y0 - 1); // the click a mouseup makes is not a click here
    expect(store.selection.tokens).toEqual([1]);
    // the texts' points travel as a bitset over the reply's rows: the second text point (text 4, position 2)
    expect(store.selection.points).toEqual(encodeRows([1], 2));
    expect(store.selection.points).toEqual({ n: 2, bits: "Ag==" });
    expect(store.selection.token).toBe(1); // the lasso's first prompt token, as the selected one was outside it
    expect(canvas.dataset.rwLassoed).toBe("1,1");
    expect(canvas.dataset.rwMarked).toBe("1,1"); // drawn emphasised: what the selection holds
    expect(canvas.dataset.rwOutline).toBe("true"); // the outline stays after the mouse is up
    const lassoInfo = el.querySelector("[data-rw-projector-lasso]")!;
    expect(lassoInfo.textContent).toContain("lasso: 1 of the prompt's tokens, 1 of the texts' points");
    // a lasso made in Python (the kernel's bitset, or the pairs of an older saved page) is marked the same way
    model.change("selection", { ...store.selection, tokens: [0, 2], points: encodeRows([0, 1], 2) });
    expect(canvas.dataset.rwMarked).toBe("2,2");
    expect(lassoInfo.textContent).toContain("lasso: 2 of the prompt's tokens, 2 of the texts' points");
    model.change("selection", { ...store.selection, tokens: [1], points: [[4, 2]] });
    expect(canvas.dataset.rwMarked).toBe("1,1");
    expect(decodeRows(encodeRows([0, 9, 17], 18), 18).reduce((a, b) => a + b, 0)).toBe(3);
    expect(countRows(encodeRows([0, 9, 17], 18))).toBe(3);
    const marked = Array.from(el.querySelectorAll(".rw-token.rw-lassoed")).map((e) => (e as HTMLElement).dataset.rwToken);
    expect(marked).toEqual(["1"]);
    // a token selected in the tokens view rings its point here
    (el.querySelector('.rw-token[data-rw-token="2"]') as HTMLElement).click();
    expect(store.selection.token).toBe(2);
    expect(canvas.dataset.rwSelectedPoint).toBe("2");
    // a click on a point still selects its token and keeps the lasso; a click away from every point clears it
    mouse("mousedown", points[0][0], points[0][1]);
    mouse("mouseup", points[0][0], points[0][1]);
    mouse("click", points[0][0], points[0][1]);
    expect(store.selection.token).toBe(0);
    expect(store.selection.tokens).toEqual([1]);
    const [ex, ey] = px(-1, 2);
    mouse("mousedown", ex, ey);
    mouse("mouseup", ex, ey);
    mouse("click", ex, ey);
    expect(store.selection.tokens).toEqual([]);
    expect(store.selection.points).toEqual([]);
    expect(el.querySelectorAll(".rw-token.rw-lassoed")).toHaveLength(0);
    expect(canvas.dataset.rwMarked).toBe("0,0");
    expect(canvas.dataset.rwOutline).toBe("false");
    expect(lassoInfo.textContent).toBe("");
  });

  it("starts on the colouring the kernel names (the texts' labels when they have some)", () => {
    const model = new FakeModel(
      traits(3, { views: ["projector"], shape: { ...traits(3).shape, projector_colours: ["source", "position", "label"], projector_colour: 2 } }),
    );
    const el = document.createElement("div");
    mount(model, el);
    expect(model.sent.find((m) => m.what === "projector")).toMatchObject({ colour: 2 });
    expect((el.querySelector("[data-rw-projector-colour]") as HTMLSelectElement).value).toBe("2");
  });

  it("colours by an SAE feature: the explorer's selected feature, chosen here for every view", async () => {
    const { model, el, store } = setup(["source", "position", "SAE 0 feature"], {
      saes: [{ name: "demo", hook: "blocks.2.hook_resid_pre", d_sae: 512 }],
    });
    expect(saeOf("SAE 0 feature")).toBe(0);
    expect(saeOf("probe 0")).toBeNull();
    const feature = el.querySelector("[data-rw-projector-feature]") as HTMLInputElement;
    expect((feature.closest("label") ?? feature.parentElement)!.hidden).toBe(true); // not an SAE colouring
    const select = el.querySelector("[data-rw-projector-colour]") as HTMLSelectElement;
    select.value = "2";
    select.dispatchEvent(new Event("change"));
    expect(model.sent.filter((m) => m.what === "projector").pop()).toMatchObject({ colour: 2, feature: 0 });
    feature.value = "37";
    feature.dispatchEvent(new Event("change"));
    expect(store.selection).toMatchObject({ sae: 0, feature: 37 });
    expect(model.sent.filter((m) => m.what === "projector").pop()).toMatchObject({ colour: 2, feature: 37 });
    const r = reply(0);
    answer(model, "projector", { ...r.data, categories: [], value_max: 2.5 }, [r.buffers[0], float32([0, 0.5, 1, 0, 0.2]), ...r.buffers.slice(2)]);
    await settle();
    expect(el.querySelector(".rw-projector-view .rw-legend")!.textContent).toContain("SAE 0 feature 37: light 0 \u2192 dark 2.50");
    feature.value = "512"; // out of range: the input goes back to the selected feature
    feature.dispatchEvent(new Event("change"));
    expect(feature.value).toBe("37");
    expect(store.selection.feature).toBe(37);
  });

  it("predictions, features and probes show the kernel's average over the lassoed tokens, captioned", async () => {
    const model = new FakeModel(
      traits(4, {
        views: ["tokens", "predictions", "features", "probes"],
        saes: [{ name: "demo", hook: "blocks.2.hook_resid_pre", d_sae: 512 }],
        probes: [{ kind: "logistic", site: "resid_post", classes: ["neg", "pos"], layers: [0, 1] }],
      }),
    );
    const el = document.createElement("div");
    document.body.appendChild(el);
    const store = mount(model, el);
    const blocks = () => Array.from(el.querySelectorAll<HTMLElement>("[data-rw-lasso-over]"));
    expect(blocks()).toHaveLength(3);
    expect(blocks().every((b) => b.hidden)).toBe(true); // no lasso: nothing asked, nothing shown
    expect(model.sent.some((m) => String(m.what).endsWith("_over"))).toBe(false);
    store.select({ tokens: [1, 3] });
    expect(model.sent.find((m) => m.what === "predictions_over")).toMatchObject({ tokens: [1, 3] });
    expect(model.sent.find((m) => m.what === "features_over")).toMatchObject({ sae: 0, tokens: [1, 3] });
    expect(model.sent.find((m) => m.what === "probe_over")).toMatchObject({ probe: 0, layer: 0, tokens: [1, 3] });
    answer(model, "predictions_over", {
      ids: header("int32", [2, 2], 0), probs: header("float32", [2, 2], 1), delta_prob: header("float32", [2, 2], 2),
      delta_logit: header("float32", [2, 2], 3), tokens: [["cat", "dog"], ["cat", "dog"]], over: 2,
    }, [int32([7, 8, 7, 8]), float32([0.6, 0.3, 0.6, 0.3]), float32([0, 0, 0, 0]), float32([0, 0, 0, 0])]);
    answer(model, "features_over", { indices: header("int32", [2], 0), values: header("float32", [2], 1), over: 2 }, [int32([37, 5]), float32([1.5, 0.25])]);
    answer(model, "probe_over", { layer: 0, classes: ["neg", "pos"], mean: header("float32", [2], 0), over: 2 }, [float32([0.25, 0.75])]);
    await settle();
    const [predictions, features, probes] = ["predictions", "features", "probes"].map(
      (v) => el.querySelector<HTMLElement>(`.rw-${v}-view [data-rw-lasso-over]`)!,
    );
    expect(predictions.hidden).toBe(false);
    expect(predictions.textContent).toContain("mean next-token probability over 2 lassoed tokens");
    expect(predictions.textContent).toContain("60.0%");
    expect(features.textContent).toContain("most active on average over 2 lassoed tokens");
    (features.querySelector('[data-rw-feature="37"]') as HTMLElement).click();
    expect(store.selection.feature).toBe(37);
    expect(probes.textContent).toContain("layer 0: mean p(neg) 0.25 \u00b7 p(pos) 0.75 over 2 lassoed tokens");
    // a new layer asks the probe again; clearing the lasso hides every block
    store.select({ layer: 1 });
    expect(model.sent.filter((m) => m.what === "probe_over").pop()).toMatchObject({ layer: 1, tokens: [1, 3] });
    store.select({ tokens: [], points: [] });
    expect(blocks().every((b) => b.hidden)).toBe(true);
    // a model run elsewhere: the kernel's note is the caption
    store.select({ tokens: [2] });
    answer(model, "predictions_over", { over: 1, note: "no mean next-token probability (the model runs elsewhere)" });
    await settle();
    expect(predictions.hidden).toBe(false);
    expect(predictions.textContent).toBe("no mean next-token probability (the model runs elsewhere) over 1 lassoed token");
  });
});
