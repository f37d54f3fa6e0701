// @vitest-environment happy-dom
// The features, neurons, probes, attribution and patching views on a fake model: clicks select, shift+clicks and
// buttons send the kernel what to change.
import { describe, expect, it } from "vitest";
import { answer, float32, header, int32, settle } from "./fake";
import { click, confirm, key, sets, setup } from "./mounted";

describe("SAE features view", () => {
  const saeTraits = {
    views: ["interventions", "tokens", "features"],
    saes: [{ name: "demo-sae", hook: "blocks.2.hook_resid_pre", d_sae: 64 }],
    shape: { n_layers: 2, n_heads: 2, d_mlp: 8, n_tokens: 4, max_side: 512, dashboards: true },
  };

  async function withFeatures() {
    const ctx = setup(saeTraits);
    const get = ctx.model.sent.find((m) => m.what === "features");
    expect(get).toMatchObject({ sae: 0, position: 3 });
    answer(ctx.model, "features", { indices: header("int32", [2], 0), values: header("float32", [2], 1), position: 3 }, [int32([17, 5]), float32([2.5, 0.5])]);
    await settle();
    return ctx;
  }

  it("a click selects a feature and asks for its activations and contexts; it does not ablate it", async () => {
    const { model, el, store } = await withFeatures();
    const button = el.querySelector('[data-rw-feature="17"]') as HTMLElement;
    expect(button.textContent).toBe("f17  2.50");
    expect(button.getAttribute("aria-label")).toBe("SAE feature 17, activation 2.50");
    button.click();
    expect(store.selection.feature).toBe(17);
    expect(sets(model)).toHaveLength(0);
    expect(model.sent.find((m) => m.what === "feature")).toMatchObject({ sae: 0, index: 17 });
    expect(model.sent.find((m) => m.what === "dashboard")).toMatchObject({ sae: 0, index: 17 });
  });

  it("its ablate button (or shift+click) ablates it; it stays listed, marked, and the tokens show its clean activation", async () => {
    const { model, el } = await withFeatures();
    (el.querySelector('[data-rw-feature="17"]') as HTMLElement).click();
    (el.querySelector('[data-rw-ablate="feature"]') as HTMLElement).click();
    expect(sets(model)[0].interventions).toEqual([{ type: "ablate", sae: 0, feature: 17 }]);
    confirm(model, [{ type: "ablate", sae: 0, feature: 17 }]);
    // the kernel's new top list no longer has it (its activation is now 0)
    answer(model, "features", { indices: header("int32", [1], 0), values: header("float32", [1], 1), position: 3 }, [int32([5]), float32([0.5])], 1);
    answer(model, "feature", { values: header("float32", [4], 0), clean: header("float32", [4], 1), index: 17 }, [float32([0, 0, 0, 0]), float32([0, 1, 2, 2.5])], 1);
    await settle();
    const listed = el.querySelector('[data-rw-feature="17"]') as HTMLElement;
    expect(listed.textContent).toBe("f17  ablated");
    expect(listed.classList.contains("rw-ablated")).toBe(true);
    expect(el.querySelector(".rw-tokens-view .rw-legend")!.textContent).toContain("SAE feature 17 in the clean run (no interventions; it is ablated)");
    expect(el.querySelector(".rw-tokens-view .rw-legend")!.textContent).toContain("2.50");
    const other = await withFeatures();
    click(other.el.querySelector('[data-rw-feature="5"]')!, { shiftKey: true });
    expect(sets(other.model)[0].interventions).toEqual([{ type: "ablate", sae: 0, feature: 5 }]);
  });

  it("steers with the selected feature at the slider's scale, labelled as the chip will say it", async () => {
    const { model, el } = await withFeatures();
    (el.querySelector('[data-rw-feature="5"]') as HTMLElement).click();
    const slider = el.querySelector("[data-rw-steer]") as HTMLInputElement;
    slider.value = "-6";
    slider.dispatchEvent(new Event("input"));
    expect(slider.nextElementSibling!.textContent).toBe("\u00d7 -6");
    (el.querySelector("[data-rw-steer-apply]") as HTMLElement).click();
    expect(sets(model)[0].interventions).toEqual([{ type: "steer", scale: -6, sae: 0, feature: 5 }]);
    expect(el.querySelector('[data-rw-feature="5"]')!.classList.contains("rw-steered")).toBe(true);
  });
});

describe("neurons view", () => {
  it("a click selects a neuron; shift+click ablates it; it stays listed, marked", async () => {
    const { model, el, store } = setup();
    answer(model, "neurons", { indices: header("int32", [2], 0), values: header("float32", [2], 1), layer: 0, position: 3 }, [int32([7, 2]), float32([1.5, 0.5])]);
    await settle();
    click(el.querySelector('[data-rw-neuron="0.7"]')!);
    expect(store.selection).toMatchObject({ layer: 0, neuron: 7 });
    expect(sets(model)).toHaveLength(0);
    expect(el.querySelector('[data-rw-ablate="neuron"]')!.textContent).toBe("ablate neuron 0.7");
    click(el.querySelector('[data-rw-neuron="0.2"]')!, { shiftKey: true });
    expect(sets(model)[0].interventions).toEqual([{ type: "ablate", layer: 0, neuron: 2, mode: "zero" }]);
    confirm(model, [{ type: "ablate", layer: 0, neuron: 2 }]);
    answer(model, "neurons", { indices: header("int32", [1], 0), values: header("float32", [1], 1), layer: 0, position: 3 }, [int32([7]), float32([1.5])], 1);
    await settle();
    const ablated = el.querySelector('[data-rw-neuron="0.2"]') as HTMLElement;
    expect(ablated.textContent).toBe("n2  ablated");
    expect(ablated.getAttribute("aria-label")).toBe("neuron 0.2, ablated");
  });
});

describe("a neuron's top contexts", () => {
  it("selecting a neuron asks for its top contexts and shows them as text, the peak marked", async () => {
    const shape = { n_layers: 2, n_heads: 2, d_mlp: 8, n_tokens: 4, max_side: 512, neuron_examples: true };
    const { model, el } = setup({ views: ["interventions", "tokens", "neurons"], shape });
    answer(model, "neurons", { indices: header("int32", [1], 0), values: header("float32", [1], 1), layer: 0, position: 3 }, [int32([5]), float32([1.5])]);
    await settle();
    click(el.querySelector('[data-rw-neuron="0.5"]')!);
    expect(model.sent.find((m) => m.what === "neuron_examples")).toMatchObject({ layer: 0, index: 5 });
    const tokens = [["<b>x</b>", "a"], ["b"]];
    answer(model, "neuron_examples", { tokens, peaks: [0, 0], values: header("float32", [3], 0), texts: [4, 9], layer: 0, index: 5 }, [float32([2, 1, 0.5])]);
    await settle();
    const lines = el.querySelectorAll(".rw-neuron-examples .rw-example");
    expect(lines).toHaveLength(2);
    expect(lines[0].textContent).toContain("<b>x</b>"); // set as text, never parsed
    expect(lines[0].querySelector("b")).toBeNull();
    expect(lines[0].querySelector(".rw-ctx-peak")!.getAttribute("title")).toBe("2.000");
    expect(lines[1].getAttribute("title")).toBe("text 9");
  });
});

describe("a head's and a probe direction's top contexts", () => {
  const tokens = [["a", "<i>b</i>"], ["c"]];
  const values = header("float32", [3], 0);
  it("the attention view asks for the selected head's contexts and shows them as text", async () => {
    const shape = { n_layers: 2, n_heads: 2, d_mlp: 8, n_tokens: 4, max_side: 512, head_examples: true };
    const { model, el } = setup({ views: ["attention"], shape });
    expect(model.sent.find((m) => m.what === "head_examples")).toMatchObject({ layer: 0, head: 0 });
    answer(model, "head_examples", { tokens, peaks: [1, 0], values, texts: [3, 7], label: "head 0.0 (out_norm)", layer: 0, head: 0 }, [float32([0.5, 2, 1])]);
    await settle();
    const lines = el.querySelectorAll(".rw-head-examples .rw-example");
    expect(lines).toHaveLength(2);
    expect(lines[0].querySelector("i")).toBeNull(); // set as text, never parsed
    expect(lines[0].querySelector(".rw-ctx-peak")!.textContent).toContain("<i>b</i>");
    expect(el.querySelector(".rw-head-examples .rw-caption")!.textContent).toBe("head 0.0 (out_norm): top contexts");
  });
  it("the probes view asks for its direction's contexts at the selected layer", async () => {
    const { model, el } = setup({
      views: ["probes"],
      shape: { n_layers: 2, n_heads: 2, d_mlp: 8, n_tokens: 4, max_side: 512, probe_examples: true },
      probes: [{ kind: "mean_diff", site: "resid_post", classes: ["negative", "positive"], layers: [0, 1] }],
    });
    expect(model.sent.find((m) => m.what === "probe_examples")).toMatchObject({ probe: 0, layer: 0 });
    answer(model, "probe_examples", { tokens, peaks: [1, 0], values, texts: [3, 7], label: "probe toward positive at layer 0", probe: 0, layer: 0 }, [float32([0.5, 2, 1])]);
    await settle();
    expect(el.querySelectorAll(".rw-probe-examples .rw-example")).toHaveLength(2);
    expect(el.querySelector(".rw-probe-examples .rw-caption")!.textContent).toContain("probe toward positive at layer 0");
  });
});

describe("probes view", () => {
  it("selects a layer from its buttons and sends a steer_probe command in class gaps, the chip's unit", () => {
    const { model, el, store } = setup({
      views: ["interventions", "probes"],
      probes: [{ kind: "mean_diff", site: "resid_post", classes: ["negative", "positive"], layers: [0, 1] }],
    });
    expect(model.sent.find((m) => m.what === "probe")).toMatchObject({ probe: 0, layer: 0 });
    (el.querySelector('.rw-probes-view [data-rw-layer="1"]') as HTMLElement).click();
    expect(store.selection.layer).toBe(1);
    const asked = model.sent.filter((m) => m.what === "probe");
    expect(asked[asked.length - 1]).toMatchObject({ probe: 0, layer: 1 });
    (el.querySelector("[data-rw-probe-class]") as HTMLSelectElement).value = "negative";
    expect(el.querySelector("[data-rw-probe-strength]")!.nextElementSibling!.textContent).toBe("strength 2 (class gaps)");
    (el.querySelector("[data-rw-probe-steer]") as HTMLElement).click();
    expect(model.sent[model.sent.length - 1]).toMatchObject({ type: "steer_probe", probe: 0, layer: 1, toward: "negative", strength: 2 });
    expect(store.busy).toBe(true);
  });
});

describe("attribution and patching cells", () => {
  const heads = (n: number) => ({ header: header("float32", [2, 2], 0), buffer: float32(Array.from({ length: n }, (_, i) => i - 1.5)) });

  it("a click on an attribution head shows its pattern (head_layer), shift+click ablates it", async () => {
    const views = ["interventions", "tokens", "attention", "attribution"];
    const { model, el, store } = setup({ views });
    store.emit("pick-target", 12); // a predicted word clicked
    const hs = heads(4);
    const zeros = { dtype: "float32", shape: [2], buffer: 1 };
    answer(model, "attribution", { heads: hs.header, attn: zeros, mlp: zeros, embed: 0, bias: 0, total: 1, position: 3, target_token: "t2", foil_token: null }, [hs.buffer, float32([0, 0])]);
    await settle();
    const cell = el.querySelector('.rw-attribution-view [data-rw-head="1.0"]')!;
    click(cell);
    expect(store.selection).toMatchObject({ head_layer: 1, head: 0, layer: 0 });
    expect(sets(model)).toHaveLength(0);
    expect(cell.classList.contains("rw-selected")).toBe(true);
    click(cell, { shiftKey: true });
    expect(sets(model)[0].interventions).toEqual([{ type: "ablate", layer: 1, head: 0, mode: "zero" }]);
  });

  it("a click on a patching cell selects its head; shift+click applies the patch", async () => {
    const views = ["interventions", "tokens", "attention", "patching"];
    const { model, el, store } = setup({ views });
    answer(model, "sweep_defaults", { target: 12, foil: 13 });
    await settle();
    const hs = heads(4);
    answer(model, "sweep", { values: hs.header, axes: ["layer", "head"], site: "heads", method: "exact", clean: 2, corrupted: -1, target_token: "t2", foil_token: "t3" }, [hs.buffer]);
    await settle();
    const cell = el.querySelector('[data-rw-cell="1.0"]')!;
    click(cell);
    expect(store.selection).toMatchObject({ head_layer: 1, head: 0 });
    expect(model.sent.filter((m) => m.type === "apply_patch")).toHaveLength(0);
    click(cell, { shiftKey: true });
    expect(model.sent.filter((m) => m.type === "apply_patch")[0]).toMatchObject({ cell: [1, 0], target: 12, foil: 13 });
  });
});

describe("an ablated neuron's colours", () => {
  it("an ablated neuron colours the tokens in the run the kernel names (without its ablation, the others kept)", async () => {
    const shape = { n_layers: 2, n_heads: 2, d_mlp: 8, n_tokens: 4, max_side: 512 };
    const { model, el } = setup({ views: ["interventions", "tokens", "neurons"], shape });
    answer(model, "neurons", { indices: header("int32", [1], 0), values: header("float32", [1], 1), layer: 0, position: 3 }, [int32([5]), float32([1.5])]);
    await settle();
    (el.querySelector('[data-rw-neuron="0.5"]') as HTMLElement).click();
    (el.querySelector('[data-rw-ablate="neuron"]') as HTMLElement).click();
    confirm(model, [{ type: "ablate", layer: 1, head: 0 }, { type: "ablate", layer: 0, neuron: 5 }]);
    const label = "without its ablation (the other 1 intervention kept)";
    answer(model, "neuron", { values: header("float32", [4], 0), clean: header("float32", [4], 1), clean_label: label, layer: 0, index: 5 }, [float32([0, 0, 0, 0]), float32([0, 1, 2, 3])], 1);
    await settle();
    expect(el.querySelector(".rw-tokens-view .rw-legend")!.textContent).toContain(`neuron 0.5 ${label}`);
    expect(el.querySelector(".rw-tokens-view .rw-legend")!.textContent).toContain("3.00");
  });
});
