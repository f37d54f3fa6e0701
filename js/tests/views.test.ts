// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { mount } from "../src/widget";
import { attentionRow, cellAt } from "../src/views/attention";
import { lensWindow } from "../src/views/lens";
import { FakeModel, float32, int32, traits } from "./fake";

function setup(extra: Record<string, unknown> = {}) {
  const model = new FakeModel(traits(4, extra));
  const el = document.createElement("div");
  document.body.appendChild(el);
  const store = mount(model, el);
  return { model, el, store };
}

describe("views", () => {
  it("render token text literally, never as HTML", () => {
    const { el } = setup({ tokens: ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", " a", "b"] });
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector("script")).toBeNull();
    const first = el.querySelector('[data-rw-token="0"]')!;
    expect(first.textContent!.replace(/\u00a0/g, " ")).toBe("<img src=x onerror=alert(1)>");
  });

  it("mark a BOS first token and special tokens, with their ids on hover; without kinds, none", () => {
    const { el } = setup({ tokens: ["<s>", "<0xF0><0x9F>", "\n", "</s>"], token_kinds: ["bos", "", "", "special"] });
    const span = (pos: number) => el.querySelector(`[data-rw-token="${pos}"]`) as HTMLElement;
    expect(span(0).classList.contains("rw-bos")).toBe(true);
    expect(span(0).title).toBe("position 0 · id 10 · BOS (beginning of sequence)");
    expect(span(3).classList.contains("rw-special") && span(3).title.endsWith("id 13 · special token")).toBe(true);
    expect(span(1).classList.contains("rw-special") || span(2).classList.contains("rw-special")).toBe(false);
    expect(span(1).textContent).toBe("<0xF0><0x9F>");
    expect(span(2).textContent).toBe("\\n"); // a newline stays visible
    expect(el.querySelector(".rw-bos-note")!.textContent).toContain("first token is BOS");
    const plain = setup().el;
    expect(plain.querySelector(".rw-bos-note")).toBeNull();
    expect(plain.querySelector(".rw-special")).toBeNull();
  });

  it("give every clickable thing its stable selector", () => {
    const { el } = setup();
    expect(el.querySelectorAll("[data-rw-token]").length).toBeGreaterThanOrEqual(4);
    expect(el.querySelectorAll("[data-rw-head]")).toHaveLength(4);
    expect(el.querySelector('[data-rw-head="1.0"]')!.getAttribute("data-rw-layer")).toBe("1");
    expect(el.querySelectorAll("button.rw-layer")).toHaveLength(2);
  });

  it("ask only for what is visible on first render", () => {
    const { model } = setup();
    const asked = model.sent.map((m) => m.what).sort();
    expect(asked).toEqual(["lens", "neurons", "overview", "pattern", "predictions"]);
    expect(model.sent.find((m) => m.what === "pattern")).toMatchObject({ layer: 0, head: 0 });
  });

  it("a click on a head selects it and asks the kernel to ablate it", () => {
    const { model, el, store } = setup({ mode: "mean" });
    (el.querySelector('[data-rw-head="1.1"]') as HTMLElement).click();
    expect(store.selection).toMatchObject({ layer: 1, head: 1 });
    const set = model.sent.find((m) => m.type === "set");
    expect(set.interventions).toEqual([{ type: "ablate", layer: 1, head: 1, mode: "mean" }]);
    expect(el.querySelector('[data-rw-head="1.1"]')!.classList.contains("rw-ablated")).toBe(true);
    expect(el.querySelector(".rw-root")!.hasAttribute("data-rw-busy")).toBe(true);
    expect(el.querySelector(".rw-iv")!.textContent).toContain("applying");
    // the kernel lists it with its own label
    const listed = { type: "ablate", layer: 1, head: 1, neuron: null, mode: "mean", seed: 0, sae: null, feature: null, direction: [] };
    model.change("intervention_list", [{ ...listed, label: "ablate head 1.1 (mean)", key: "k1" }]);
    model.deliver({ type: "applied", id: set.id, gen: 1 });
    expect(el.querySelector(".rw-iv")!.textContent).toContain("ablate head 1.1 (mean)");
    expect(el.querySelector('[data-rw-head="1.1"]')!.classList.contains("rw-ablated")).toBe(true);
    expect(el.querySelector(".rw-root")!.hasAttribute("data-rw-busy")).toBe(false);
  });

  it("offers the ablation modes the kernel lists, those that cannot run disabled with the reason", () => {
    const { el } = setup();
    const options = Array.from(el.querySelectorAll("[data-rw-mode] option")) as HTMLOptionElement[];
    expect(options.map((o) => [o.value, o.disabled])).toEqual([["zero", false], ["mean", false], ["resample", true]]);
    expect(options[2].textContent).toContain("needs reference texts");
  });

  it("in select mode, or in a view that takes no interventions, a click only selects", () => {
    const { model, el } = setup({ editable: false });
    (el.querySelector('[data-rw-head="0.1"]') as HTMLElement).click();
    expect(model.sent.some((m) => m.type === "set")).toBe(false);
    const other = setup();
    other.store.action = "select";
    (other.el.querySelector('[data-rw-head="0.1"]') as HTMLElement).click();
    expect(other.model.sent.some((m) => m.type === "set")).toBe(false);
  });

  it("a click on a token selects it and refetches what depends on the position", () => {
    const { model, el, store } = setup();
    const before = model.sent.length;
    (el.querySelector('.rw-token[data-rw-token="1"]') as HTMLElement).click();
    expect(store.selection.token).toBe(1);
    const asked = model.sent.slice(before).map((m) => m.what);
    expect(asked).toEqual(["predictions", "neurons"]); // predictions first: the kernel answers in order
  });

  it("paint predictions, clean and intervened, with the change", async () => {
    const { model, el } = setup();
    const get = model.sent.find((m) => m.what === "predictions");
    model.deliver(
      {
        type: "reply",
        id: get.id,
        what: "predictions",
        gen: 0,
        data: {
          ids: { dtype: "int32", shape: [2, 2], buffer: 0 },
          probs: { dtype: "float32", shape: [2, 2], buffer: 1 },
          delta_prob: { dtype: "float32", shape: [2, 2], buffer: 2 },
          delta_logit: { dtype: "float32", shape: [2, 2], buffer: 3 },
          tokens: [["paris", "rome"], ["rome", "paris"]],
          position: 3,
        },
      },
      [int32([1, 2, 2, 1]), float32([0.9, 0.1, 0.6, 0.3]), float32([0, 0, 0.5, -0.6]), float32([0, 0, 2, -3])],
    );
    await new Promise((resolve) => setTimeout(resolve, 0));
    const intervened = el.querySelector('[data-rw-column="intervened"]')!;
    expect(intervened.textContent).toContain("rome");
    expect(intervened.textContent).toContain("+50.0%");
    expect(intervened.textContent).toContain("\u22123.00");
    expect(el.querySelector("[data-rw-predictions]")!.getAttribute("data-rw-painted")).toBe("1");
  });

  it("show the kernel's error in the widget", () => {
    const { model, el } = setup();
    model.change("error", "head 9 is out of range");
    expect(el.querySelector("[data-rw-error]")!.textContent).toBe("head 9 is out of range");
  });
});

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
    ctx.model.deliver(
      { type: "reply", id: get.id, what: "features", gen: 0, data: { indices: { dtype: "int32", shape: [2], buffer: 0 }, values: { dtype: "float32", shape: [2], buffer: 1 }, position: 3 } },
      [int32([17, 5]), float32([2.5, 0.5])],
    );
    await new Promise((resolve) => setTimeout(resolve, 0));
    return ctx;
  }

  it("lists the active features; a click selects one, ablates it and asks for its activations and contexts", async () => {
    const { model, el, store } = await withFeatures();
    const button = el.querySelector('[data-rw-feature="17"]') as HTMLElement;
    expect(button.textContent).toBe("f17  2.50");
    button.click();
    expect(store.selection.feature).toBe(17);
    const set = model.sent.find((m) => m.type === "set");
    expect(set.interventions).toEqual([{ type: "ablate", sae: 0, feature: 17 }]);
    expect(model.sent.find((m) => m.what === "feature")).toMatchObject({ sae: 0, index: 17 });
    expect(model.sent.find((m) => m.what === "dashboard")).toMatchObject({ sae: 0, index: 17 });
    expect(el.querySelector('[data-rw-feature="17"]')!.classList.contains("rw-ablated")).toBe(true);
  });

  it("steers with the selected feature at the slider's strength", async () => {
    const { model, el, store } = await withFeatures();
    store.action = "select";
    (el.querySelector('[data-rw-feature="5"]') as HTMLElement).click();
    const slider = el.querySelector("[data-rw-steer]") as HTMLInputElement;
    slider.value = "-6";
    slider.dispatchEvent(new Event("input"));
    (el.querySelector("[data-rw-steer-apply]") as HTMLElement).click();
    const set = model.sent.find((m) => m.type === "set");
    expect(set.interventions).toEqual([{ type: "steer", scale: -6, sae: 0, feature: 5 }]);
    expect(el.querySelector('[data-rw-feature="5"]')!.classList.contains("rw-steered")).toBe(true);
  });
});

describe("probes view", () => {
  it("selects a layer from its buttons and sends a steer_probe command", () => {
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
    (el.querySelector("[data-rw-probe-steer]") as HTMLElement).click();
    expect(model.sent[model.sent.length - 1]).toMatchObject({ type: "steer_probe", probe: 0, layer: 1, toward: "negative", strength: 2 });
    expect(store.busy).toBe(true);
  });
});

describe("view logic", () => {
  it("maps pooled pattern pixels to token positions", () => {
    const view = { values: { dtype: "float32" as const, shape: [2, 2], data: new Float32Array([1, 0, 0.5, 0.5]) }, window: [0, 8, 0, 8] as [number, number, number, number] };
    expect(cellAt(view, 1, 0)).toEqual({ query: 4, key: 0 });
    const row = attentionRow(view, 5, 8)!;
    expect(Array.from(row)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(attentionRow({ ...view, window: [0, 4, 0, 8] }, 6, 8)).toBeNull();
  });

  it("keeps the lens window around the selection and inside the prompt", () => {
    expect(lensWindow(0, 100)).toEqual([0, 16]);
    expect(lensWindow(50, 100)).toEqual([42, 58]);
    expect(lensWindow(99, 100)).toEqual([84, 100]);
    expect(lensWindow(2, 5)).toEqual([0, 5]);
  });
});
