// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { contrast, parseColour } from "../src/colour";
import { ablatedPositions, positionName, togglePosition } from "../src/views/vit_attention";
import { saliencyCaption } from "../src/views/saliency";
import { answer, float32, header, int32, settle, traits } from "./fake";
import { click, sets, setup } from "./mounted";

const grid = { prefix: 1, rows: 4, cols: 4 };
const vit = (extra: Record<string, unknown> = {}) =>
  setup({
    views: ["interventions", "vit_attention", "class_lens", "saliency"],
    tokens: [],
    token_ids: [],
    shape: {
      ...traits().shape, n_layers: 2, n_heads: 3, n_tokens: 1, patch_grid: grid, kind: "vit",
      saliency_methods: ["gradient", "integrated_gradients"], class_names: ["0", "1", "2"],
    },
    selection: { token: 0, layer: 1, vit_head: 2, query: 0, saliency_class: 1, saliency_method: 1 },
    ...extra,
  });
const last = (sent: Record<string, unknown>[], what: string) => sent.filter((m) => m.what === what).slice(-1)[0];

describe("the ViT attention view", () => {
  it("names positions and toggles one position's ablation at a layer", () => {
    expect([0, 1, 6, 16].map((p) => positionName(grid, p))).toEqual(["CLS", "patch (0, 0)", "patch (1, 1)", "patch (3, 3)"]);
    const one = togglePosition([], 2, 6, "mean");
    expect(one).toEqual([{ type: "ablate", layer: 2, positions: [6], mode: "mean" }]);
    const two = togglePosition([...one, { type: "ablate", layer: 2, head: 1 }], 2, 7, "zero");
    expect(ablatedPositions(two, 2)).toEqual([6, 7]);
    expect(ablatedPositions(two, 1)).toEqual([]);
    expect(togglePosition(two, 2, 6, "zero")).toEqual([{ type: "ablate", layer: 2, head: 1 }, two[2]]);
  });

  it("asks for the selected head from the selected query, and shift+click on a head ablates it", async () => {
    const { el, model, store } = vit();
    expect(last(model.sent, "vit_attention")).toMatchObject({ layer: 1, head: 2, query: 0 });
    expect(last(model.sent, "vit_heads")).toMatchObject({ query: 0 });
    answer(model, "vit_heads", { entropy: header("float32", [2, 3], 0), query: 0 }, [float32([2.8, 2, 1, 0.5, 0.2, 0.1])]);
    answer(model, "vit_attention", { grid: header("float32", [4, 4], 0), prefix: header("float32", [1], 1), layer: 1, head: 2, query: 0, rows: 4, cols: 4 }, [
      float32(new Array(16).fill(0.05)),
      float32([0.2]),
    ]);
    await settle();
    const view = el.querySelector(".rw-vit-attention-view") as HTMLElement;
    expect(view.dataset.rwShown).toBe("1.2.0");
    expect(el.querySelector("[data-rw-hint]")!.textContent).toBe("click a head or a patch to select it; shift+click it to ablate it");
    expect(el.querySelector("[data-rw-vit-caption]")!.textContent).toBe("head 1.2 from CLS: 20% on CLS");
    expect((el.querySelector("[data-rw-vit-image]") as HTMLElement).dataset.rwGrid).toBe("4x4");
    for (const button of Array.from(el.querySelectorAll<HTMLElement>("[data-rw-head]"))) {
      expect(["#000", "#fff"]).toContain(button.style.color); // its own ink, not the theme's text colour
      const text: [number, number, number] = button.style.color === "#fff" ? [255, 255, 255] : [0, 0, 0];
      expect(contrast(parseColour(button.style.background)!, text)).toBeGreaterThanOrEqual(4.5); // readable in either theme
    }
    click(el.querySelector('[data-rw-head="0.1"]')!);
    expect(store.selection).toMatchObject({ layer: 0, vit_head: 1 });
    expect("head_layer" in model.traits.selection).toBe(false); // an image session refuses keys it does not know
    expect(last(model.sent, "vit_attention")).toMatchObject({ layer: 0, head: 1, query: 0 });
    click(el.querySelector('[data-rw-head="1.0"]')!, { shiftKey: true });
    expect(sets(model).slice(-1)[0].interventions).toEqual([{ type: "ablate", layer: 1, head: 0, mode: "zero" }]);
  });
});

describe("ablated patches", () => {
  it("are outlined on the image at the selected layer, and a shift+click on one restores it", async () => {
    const listed = [{ type: "ablate", layer: 1, positions: [6], mode: "zero", label: "x", key: "k0" }];
    const { el, model } = vit({ intervention_list: listed });
    answer(model, "vit_heads", { entropy: header("float32", [2, 3], 0), query: 0 }, [float32([1, 1, 1, 1, 1, 1])]);
    answer(model, "vit_attention", { grid: header("float32", [4, 4], 0), prefix: header("float32", [1], 1), layer: 1, head: 2, query: 0, rows: 4, cols: 4 }, [
      float32(new Array(16).fill(0.05)),
      float32([0.2]),
    ]);
    await settle();
    const marks = Array.from(el.querySelectorAll("[data-rw-marked]")) as HTMLElement[];
    expect(marks.map((m) => m.dataset.rwMarked)).toEqual(["1.1"]); // token 6: patch (1, 1)
    expect(el.querySelector("[data-rw-vit-caption]")!.textContent).toContain("ablated at L1: patch (1, 1)");
    click(el.querySelector("[data-rw-vit-image]")!, { shiftKey: true, clientX: 63, clientY: 63 }); // 168 px: 42 a patch
    expect(sets(model).slice(-1)[0].interventions).toEqual([]);
  });
});

describe("the image under the overlays", () => {
  it("is asked for by each view under its own key, so one view's request does not drop another's", async () => {
    const { el, model } = vit();
    const asked = model.sent.filter((m) => m.what === "image");
    expect(asked.length).toBe(2);
    for (const request of asked)
      model.deliver({ type: "reply", id: request.id, what: "image", gen: 0, data: { pixels: header("uint8", [28, 28, 1], 0) } }, [new Uint8Array(784).buffer]);
    await settle();
    const images = Array.from(el.querySelectorAll(".rw-image-overlay-image")) as HTMLCanvasElement[];
    expect(images.map((c) => c.width)).toEqual([28, 28]);
  });
});

describe("the class lens view", () => {
  it("draws a layer x class table, clean and intervened side by side, each row's top class marked", async () => {
    const { el, model } = vit({ intervention_list: [{ type: "ablate", layer: 0, head: 1, label: "x", key: "k0" }] });
    answer(model, "class_lens", {
      classes: header("int32", [2], 0), names: ["7", "1"], probs: header("float32", [2, 2, 2], 1), top: header("int32", [2, 2], 2),
    }, [int32([7, 1]), float32([0.4, 0.6, 0.9, 0.1, 0.4, 0.6, 0.2, 0.8]), int32([1, 7, 1, 1])]);
    await settle();
    const tables = el.querySelectorAll(".rw-class-lens");
    expect(Array.from(tables, (t) => (t as HTMLElement).dataset.rwColumn)).toEqual(["clean", "intervened"]);
    const cell = (table: Element, layer: number, name: string) => table.querySelector(`td[data-rw-layer="${layer}"][data-rw-class="${name}"]`)!;
    expect(cell(tables[0], 1, "7").textContent).toBe("90");
    expect(cell(tables[0], 1, "7").classList.contains("rw-top")).toBe(true);
    expect(cell(tables[1], 1, "1").classList.contains("rw-top")).toBe(true);
    expect(cell(tables[1], 1, "1").textContent).toBe("80");
  });
});

describe("the saliency view", () => {
  it("asks for the selected class and method and says how complete integrated gradients are", async () => {
    const { el, model, store } = vit();
    expect(last(model.sent, "saliency")).toMatchObject({ target: 1, method: 1 });
    answer(model, "saliency", {
      map: header("float32", [2, 2], 0), scale: 0.3, target: 1, target_name: "1", method: "integrated_gradients",
      completeness_error: 0.0012, delta: 4.5, steps: 64,
    }, [float32([1, -0.5, 0, 0.25])]);
    await settle();
    expect(el.querySelector("[data-rw-saliency-caption]")!.textContent).toBe(
      "integrated gradients of class 1's logit, 64 steps: completeness error 0.12% (the attributions sum to the logit's change from the zero baseline, +4.50)",
    );
    const method = el.querySelector('[data-rw-saliency-method="0"]')!;
    expect(method.parentElement!.classList.contains("rw-toggle")).toBe(true); // the pressed method is drawn filled
    click(method);
    expect(store.selection.saliency_method).toBe(0);
    expect(last(model.sent, "saliency")).toMatchObject({ target: 1, method: 0 });
    expect(saliencyCaption({ method: "gradient", target_name: "3", scale: 0.0123 })).toBe("gradient of class 3's logit (largest |gradient| 0.012)");
  });
});
