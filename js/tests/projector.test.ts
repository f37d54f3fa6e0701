// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { mount } from "../src/widget";
import { colourOf, frameOf, nearestPoint, toPixel } from "../src/views/projector";
import { answer, FakeModel, float32, header, int32, settle, traits } from "./fake";

function setup() {
  const model = new FakeModel(
    traits(3, { views: ["tokens", "projector"], shape: { ...traits(3).shape, projector_colours: ["source", "position", "label"] } }),
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
    expect(Array.from(el.querySelectorAll(".rw-legend-item")).map((e) => e.textContent!.trim())).toEqual(["\u25cf prompt", "\u25cf texts"]);
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
    expect(colourOf({ values, categories: ["a", "b"] }, 0)).toEqual([242, 142, 43]);
    expect(colourOf({ values, categories: [] }, 1)).toEqual([150, 150, 150]);
  });
});
