// @vitest-environment happy-dom
// The image explorer's views on a fake model: what they ask for, the thumbnails' selectors, click selects a channel
// (and asks for it enlarged), shift+click ablates it, "more" asks for a stage's next channels.
import { describe, expect, it } from "vitest";
import { mount } from "../src/widget";
import { FakeModel, float32, header, int32, settle, traits } from "./fake";
import { click, confirm, sets } from "./mounted";

function imageTraits() {
  return traits(1, {
    views: ["interventions", "image", "classes", "feature_maps"],
    tokens: [],
    token_ids: [],
    shape: {
      n_layers: 2, n_heads: 0, d_mlp: 0, n_tokens: 1, kind: "cnn", input_shape: [1, 2, 2], max_channels: 2,
      stages: [[3, 2, 2], [2, 1, 1]],
      places: { interventions: "top", image: "side", classes: "side", feature_maps: "main" },
      then: { what: "classes" },
      modes: [{ name: "zero", available: true }],
    },
    selection: { token: 0, layer: 0, channel: null },
  });
}

const last = (list: any[]) => list[list.length - 1];
const uint8 = (values: number[]) => new Uint8Array(values).buffer;

function reply(model: FakeModel, request: any, data: Record<string, unknown>, buffers: ArrayBuffer[]) {
  model.deliver({ type: "reply", id: request.id, what: request.what, gen: 0, data }, buffers);
}

describe("image explorer", () => {
  it("asks for the image, the classes and each stage's first channels; click selects, shift+click ablates", async () => {
    const model = new FakeModel(imageTraits());
    const el = document.createElement("div");
    document.body.appendChild(el);
    mount(model, el);
    const asked = model.sent.filter((m) => m.type === "get");
    expect(asked.map((m) => m.what).sort()).toEqual(["classes", "feature_maps", "feature_maps", "image"]);
    const stage0 = asked.find((m) => m.what === "feature_maps" && m.layer === 0);
    expect(stage0).toMatchObject({ start: 0 });
    reply(model, asked.find((m) => m.what === "image"), { pixels: header("uint8", [2, 2, 1], 0) }, [uint8([0, 80, 160, 255])]);
    const maps = { maps: header("uint8", [2, 2, 2], 0), layer: 0, start: 0, total: 3, lo: 0, hi: 1 };
    reply(model, stage0, maps, [uint8([0, 1, 2, 3, 4, 5, 6, 7])]);
    const classes = { ids: header("int32", [2, 2], 0), probs: header("float32", [2, 2], 1), logits: header("float32", [2, 2], 2),
      delta_prob: header("float32", [2, 2], 3), delta_logit: header("float32", [2, 2], 4), names: [["cat", "dog"], ["cat", "dog"]] };  // prettier-ignore
    const f = float32([0.6, 0.4, 0.6, 0.4]);
    reply(model, asked.find((m) => m.what === "classes"), classes, [int32([3, 5, 3, 5]), f, f, float32([0, 0, 0, 0]), float32([0, 0, 0, 0])]);
    await settle();
    expect(el.querySelector("canvas[data-rw-image]")!.getAttribute("data-rw-image")).toBe("2x2x1");
    expect(Array.from(el.querySelectorAll("[data-rw-channel]")).map((c) => c.getAttribute("data-rw-channel"))).toEqual(["0.0", "0.1"]);
    expect(el.querySelector('[data-rw-more="0"]')!.textContent).toBe("1 more channels (2 of 3 shown)");
    expect(el.querySelector(".rw-classes-view")!.getAttribute("data-rw-top")).toBe("3");
    expect(el.querySelector(".rw-class-name")!.textContent).toBe("cat");
    expect(el.querySelector("[data-rw-hint]")!.textContent).toBe("click a channel to select it; shift+click it to ablate it");

    const thumbnail = el.querySelector('[data-rw-channel="0.1"]')!;
    click(thumbnail);
    expect(model.get("selection")).toEqual({ token: 0, layer: 0, channel: 1 }); // no keys the kernel would refuse
    const asked1 = last(model.sent.filter((m) => m.what === "channel_map"));
    expect(asked1).toMatchObject({ layer: 0, channel: 1 });
    reply(model, asked1, { map: header("uint8", [2, 2], 0), layer: 0, channel: 1, lo: 0, hi: 1, min: 0, max: 1 }, [uint8([0, 9, 99, 255])]);
    await settle();
    expect(el.querySelector("canvas[data-rw-channel-map]")!.getAttribute("data-rw-channel-map")).toBe("0.1");
    const overlay = el.querySelector("canvas[data-rw-overlay]") as HTMLCanvasElement;
    expect(overlay.getAttribute("data-rw-overlay")).toBe("0.1");
    expect(overlay.hidden).toBe(true); // until asked for
    const toggle = el.querySelector("[data-rw-overlay-toggle]") as HTMLInputElement;
    toggle.checked = true;
    toggle.dispatchEvent(new Event("change"));
    expect(overlay.hidden).toBe(false);
    click(thumbnail, { shiftKey: true });
    expect(last(sets(model)).interventions).toEqual([{ type: "ablate", layer: 0, channel: 1, mode: "zero" }]);
    confirm(model, [{ type: "ablate", layer: 0, channel: 1, mode: "zero" }]);
    expect(el.querySelector('[data-rw-channel="0.1"]')!.classList.contains("rw-ablated")).toBe(true);
    click(el.querySelector('[data-rw-more="0"]')!);
    expect(last(model.sent.filter((m) => m.what === "feature_maps"))).toMatchObject({ layer: 0, start: 2 });
  });
});
