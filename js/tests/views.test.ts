// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { attentionRow, cellAt, defaultScore, pixelOf } from "../src/pattern";
import { lensWindow } from "../src/views/lens";
import { effectsWindow, probabilityChange } from "../src/views/tokens";
import { answer, FakeModel, float32, header, int32, settle } from "./fake";
import { click, confirm, key, sets, setup } from "./mounted";

const predictions = (probs: number[], dp: number[], dl: number[], tokens: string[][]) => ({
  data: {
    ids: header("int32", [2, tokens[0].length], 0),
    probs: header("float32", [2, tokens[0].length], 1),
    delta_prob: header("float32", [2, tokens[0].length], 2),
    delta_logit: header("float32", [2, tokens[0].length], 3),
    tokens,
    position: 3,
  },
  buffers: [int32(tokens.flat().map((_, i) => i)), float32(probs), float32(dp), float32(dl)],
});

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
    const span = (pos: number) => el.querySelector(`.rw-token[data-rw-token="${pos}"]`) as HTMLElement;
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
    expect(el.querySelectorAll(".rw-token[data-rw-token]")).toHaveLength(4);
    expect(el.querySelectorAll("[data-rw-head]")).toHaveLength(4);
    expect(el.querySelector('[data-rw-head="1.0"]')!.getAttribute("data-rw-layer")).toBe("1");
    expect(el.querySelectorAll("button.rw-layer")).toHaveLength(2);
    expect(el.querySelector('[data-rw-ablate="head"]')).not.toBeNull();
  });

  it("ask only for what is visible on first render", () => {
    const { model } = setup();
    const asked = model.sent.map((m) => m.what).sort();
    expect(asked).toEqual(["lens", "neurons", "overview", "pattern", "predictions"]); // no effects: nothing intervened
    expect(model.sent.find((m) => m.what === "pattern")).toMatchObject({ layer: 0, head: 0 });
  });

  it("say when a long prompt's overview reads only some query rows, and not otherwise", async () => {
    for (const stride of [1, 4]) {
      const { model, el } = setup();
      const thumbs = new Uint8Array(2 * 2 * 4 * 4).fill(128).buffer;
      const data = { thumbs: header("uint8", [2, 2, 4, 4], 0), scores: header("float32", [4, 2, 2], 1), score_names: ["previous_token", "induction", "duplicate_token", "first_token"], stride };
      answer(model, "overview", data, [thumbs, float32(new Array(16).fill(0.5))]);
      await settle();
      const note = el.querySelector<HTMLElement>("[data-rw-sampled]")!;
      expect(note.hidden).toBe(stride === 1);
      if (stride > 1) expect(note.textContent).toContain("every 4th block of query rows");
    }
  });

  it("a click on a head selects it and shows its pattern; it does not intervene", () => {
    const { model, el, store } = setup({ mode: "mean" });
    click(el.querySelector('[data-rw-head="1.1"]')!);
    expect(store.selection).toMatchObject({ head_layer: 1, head: 1, layer: 0 }); // the neurons' layer is not the head's
    expect(model.sent[model.sent.length - 1]).toMatchObject({ what: "pattern", layer: 1, head: 1 });
    expect(sets(model)).toHaveLength(0);
    expect(el.querySelector('[data-rw-head="1.1"]')!.getAttribute("aria-pressed")).toBe("true");
  });

  it("shift+click on a head, or its ablate button, asks the kernel to ablate it in the chosen mode", () => {
    const { model, el, store } = setup({ mode: "mean" });
    const head = el.querySelector('[data-rw-head="1.1"]')!;
    click(head, { shiftKey: true });
    expect(store.selection).toMatchObject({ head_layer: 1, head: 1 });
    expect(sets(model)[0].interventions).toEqual([{ type: "ablate", layer: 1, head: 1, mode: "mean" }]);
    expect(head.classList.contains("rw-ablated")).toBe(true);
    // busy where the click happened, and on the panels whose data is now stale
    expect(el.querySelector(".rw-root")!.hasAttribute("data-rw-busy")).toBe(true);
    expect(head.hasAttribute("data-rw-pending")).toBe(true);
    expect(el.querySelector(".rw-attention-view [data-rw-status]")!.textContent).toBe("running\u2026");
    expect(el.querySelector(".rw-predictions-view [data-rw-status]")!.textContent).toBe("updating\u2026");
    expect(el.querySelector(".rw-iv")!.textContent).toContain("applying");
    // the kernel lists it with its own label
    const listed = { type: "ablate", layer: 1, head: 1, neuron: null, mode: "mean", seed: 0, sae: null, feature: null, direction: [] };
    model.change("intervention_list", [{ ...listed, label: "ablate head 1.1 (mean)", key: "k1" }]);
    model.deliver({ type: "applied", id: sets(model)[0].id, gen: 1 });
    expect(el.querySelector(".rw-iv")!.textContent).toContain("ablate head 1.1 (mean)");
    expect(head.classList.contains("rw-ablated")).toBe(true);
    expect(head.getAttribute("aria-label")).toBe("head 1.1, ablated");
    expect(head.hasAttribute("data-rw-pending")).toBe(false);
    expect(el.querySelector(".rw-root")!.hasAttribute("data-rw-busy")).toBe(false);
    expect(el.querySelector('[data-rw-remove="0"]')!.getAttribute("aria-label")).toBe("remove ablate head 1.1 (mean)");
    // the button beside the selected head says what it does, and undoes it
    const button = el.querySelector('[data-rw-ablate="head"]') as HTMLButtonElement;
    expect(button.textContent).toBe("restore head 1.1");
    expect(button.getAttribute("aria-pressed")).toBe("true");
    button.click();
    expect(sets(model)[1].interventions).toEqual([]);
  });

  it("the ablate button ablates the selected head; Shift+Enter in the grid does too", () => {
    const { model, el } = setup();
    click(el.querySelector('[data-rw-head="0.1"]')!);
    const button = el.querySelector('[data-rw-ablate="head"]') as HTMLButtonElement;
    expect(button.textContent).toBe("ablate head 0.1");
    button.click();
    expect(sets(model)[0].interventions).toEqual([{ type: "ablate", layer: 0, head: 1, mode: "zero" }]);
    const other = setup();
    key(other.el.querySelector('[data-rw-head="0.0"]')!, "Enter", { shiftKey: true });
    expect(sets(other.model)[0].interventions).toEqual([{ type: "ablate", layer: 0, head: 0, mode: "zero" }]);
  });

  it("a view that takes no interventions only selects, and offers no ablate button", () => {
    const { model, el } = setup({ editable: false });
    click(el.querySelector('[data-rw-head="0.1"]')!, { shiftKey: true });
    expect(sets(model)).toHaveLength(0);
    expect((el.querySelector('[data-rw-ablate="head"]') as HTMLElement).hidden).toBe(true);
  });

  it("one view's selection does not clobber another's: neuron layers and lens cells leave the head alone", async () => {
    const { model, el, store } = setup();
    click(el.querySelector('[data-rw-head="1.1"]')!);
    click(el.querySelector('.rw-neurons-view [data-rw-layer="0"]')!);
    click(el.querySelector('.rw-neurons-view [data-rw-layer="1"]')!);
    expect(store.selection).toMatchObject({ layer: 1, head_layer: 1, head: 1 });
    answer(model, "lens", { ids: header("int32", [2, 4], 0), probs: header("float32", [2, 4], 1), start: 0, vocab: { "1": "a" } }, [
      int32([1, 1, 1, 1, 1, 1, 1, 1]),
      float32([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    ]);
    await settle();
    click(el.querySelector('td[data-rw-token="2"][data-rw-layer="0"]')!);
    expect(store.selection).toMatchObject({ token: 2, layer: 0, head_layer: 1, head: 1 });
  });

  it("offers the ablation modes the kernel lists, those that cannot run disabled with the reason, and follows changes", () => {
    const { el, model } = setup();
    const options = () => Array.from(el.querySelectorAll("[data-rw-mode] option")) as HTMLOptionElement[];
    expect(options().map((o) => [o.value, o.disabled])).toEqual([["zero", false], ["mean", false], ["resample", true]]);
    expect(options()[2].textContent).toContain("needs reference texts");
    expect(el.querySelector("[data-rw-mode]")!.closest("label")!.textContent).toContain("ablation mode");
    const modes = model.traits.shape.modes.map((m: any) => ({ name: m.name, available: true }));
    model.change("shape", { ...model.traits.shape, modes }); // reference texts were set in Python
    expect(options().every((o) => !o.disabled)).toBe(true);
  });

  it("a click on a token selects it and refetches what depends on the position; arrow keys move it", () => {
    const { model, el, store } = setup();
    const before = model.sent.length;
    click(el.querySelector('.rw-token[data-rw-token="1"]')!);
    expect(store.selection.token).toBe(1);
    expect(model.sent.slice(before).map((m) => m.what)).toEqual(["predictions", "neurons"]); // predictions first
    const line = el.querySelector(".rw-token-line")!;
    expect(line.getAttribute("role")).toBe("listbox");
    key(el.querySelector('.rw-token[data-rw-token="1"]')!, "ArrowRight");
    expect(store.selection.token).toBe(2);
    key(line, "Home");
    expect(store.selection.token).toBe(0);
    key(line, "ArrowLeft"); // stays inside the prompt
    expect(store.selection.token).toBe(0);
    key(line, "End");
    expect(store.selection.token).toBe(3);
    const selected = el.querySelector('.rw-token[data-rw-token="3"]')!;
    expect(selected.getAttribute("aria-selected")).toBe("true");
    expect(selected.getAttribute("tabindex")).toBe("0");
  });

  it("arrow keys move the selected head in the grid, and the query in the pattern", async () => {
    const { model, el, store } = setup();
    key(el.querySelector('[data-rw-head="0.0"]')!, "ArrowRight");
    expect(store.selection).toMatchObject({ head_layer: 0, head: 1 });
    key(el.querySelector('[data-rw-head="0.1"]')!, "ArrowDown");
    expect(store.selection).toMatchObject({ head_layer: 1, head: 1 });
    answer(model, "pattern", { pattern: header("float32", [4, 4], 0), window: [0, 4, 0, 4], pooled: false }, [
      float32([1, 0, 0, 0, 0.5, 0.5, 0, 0, 0.2, 0.3, 0.5, 0, 0.1, 0.2, 0.3, 0.4]),
    ]);
    await settle();
    const canvas = el.querySelector("[data-rw-pattern]")!;
    expect(canvas.getAttribute("tabindex")).toBe("0");
    key(canvas, "ArrowUp");
    expect(store.selection.token).toBe(2);
    key(canvas, "ArrowLeft");
    expect(el.querySelector(".rw-attention-view .rw-info")!.textContent).toBe('query 2 "t2" \u2192 key 1 "t1": 0.300');
  });

  it("arrow keys move the lens selection: left and right the position, up a later layer", async () => {
    const { model, el, store } = setup();
    answer(model, "lens", { ids: header("int32", [2, 4], 0), probs: header("float32", [2, 4], 1), start: 0, vocab: { "1": "a" } }, [
      int32([1, 1, 1, 1, 1, 1, 1, 1]),
      float32([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    ]);
    await settle();
    const table = el.querySelector(".rw-lens")!;
    expect(table.getAttribute("role")).toBe("grid");
    key(table, "ArrowLeft");
    expect(store.selection).toMatchObject({ token: 2, layer: 0 });
    key(table, "ArrowUp");
    expect(store.selection).toMatchObject({ token: 2, layer: 1 });
    expect(el.querySelector('td[data-rw-token="2"][data-rw-layer="1"]')!.getAttribute("tabindex")).toBe("0");
  });

  it("paint one table of predictions with nothing intervened, clean and intervened with Δp in percentage points", async () => {
    const { model, el } = setup();
    const one = predictions([0.9, 0.1, 0.9, 0.1], [0, 0, 0, 0], [0, 0, 0, 0], [["paris", "rome"], ["paris", "rome"]]);
    answer(model, "predictions", one.data, one.buffers);
    await settle();
    expect(el.querySelectorAll(".rw-pred-table")).toHaveLength(1); // no duplicate "intervened (none)" table
    expect(el.querySelector('[data-rw-column="intervened"]')!.textContent).toContain("paris90.0%");
    confirm(model, [{ type: "ablate", layer: 0, head: 0 }]);
    const two = predictions([0.9, 0.1, 0.6, 0.3], [-0.3, 0.2, 0.5, -0.6], [-1, 1, 2, -3], [["paris", "rome"], ["rome", "paris"]]);
    answer(model, "predictions", two.data, two.buffers, 1);
    await settle();
    const intervened = el.querySelector('[data-rw-column="intervened"]')!;
    expect(intervened.textContent).toContain("rome");
    expect(intervened.textContent).toContain("+50.0pp");
    expect(intervened.textContent).toContain("\u22123.00");
    expect(el.querySelector('[data-rw-column="clean"]')!.textContent).toContain("paris90.0%60.0%"); // where it went
    expect(el.querySelector("[data-rw-predictions]")!.getAttribute("data-rw-painted")).toBe("2");
  });

  it("fold predictions under half a percent that did not move", async () => {
    const { model, el } = setup();
    const probs = [0.97, 0.01, 0.004, 0.003, 0.002];
    const one = predictions([...probs, ...probs], Array(10).fill(0), Array(10).fill(0), [["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "e"]]);
    answer(model, "predictions", one.data, one.buffers);
    await settle();
    expect(el.querySelectorAll("[data-rw-prediction]")).toHaveLength(3);
    expect(el.querySelector(".rw-more")!.textContent).toBe("+ 2 more under 0.5%");
  });

  it("list no 0.0% row above the folded ones, even among the first three", async () => {
    const { model, el } = setup();
    const probs = [0.993, 0.0004, 0.0003, 0.0002];
    const one = predictions([...probs, ...probs], Array(8).fill(0), Array(8).fill(0), [["a", "b", "c", "d"], ["a", "b", "c", "d"]]);
    answer(model, "predictions", one.data, one.buffers);
    await settle();
    expect(el.querySelectorAll("[data-rw-prediction]")).toHaveLength(1);
    expect(el.querySelector('[data-rw-column="intervened"]')!.textContent).not.toContain("0.0%");
    expect(el.querySelector(".rw-more")!.textContent).toBe("+ 3 more under 0.5%");
  });

  it("show the kernel's error in the widget; dismissing hides it until another error comes", () => {
    const { model, el } = setup();
    model.change("error", "head 9 is out of range");
    const error = el.querySelector("[data-rw-error]") as HTMLElement;
    expect(error.querySelector(".rw-error-text")!.textContent).toBe("head 9 is out of range");
    expect(error.hidden).toBe(false);
    (error.querySelector("button") as HTMLButtonElement).click();
    expect(error.hidden).toBe(true);
    model.change("error", "another");
    expect(error.hidden).toBe(false);
  });

  it("a widget of one view takes the whole width; the effects sit beside what you click", () => {
    const lens = setup({ views: ["tokens", "lens"] }).el;
    expect(lens.querySelector(".rw-cols")!.classList.contains("rw-one")).toBe(true);
    expect(lens.querySelector(".rw-main")).toBeNull();
    const all = setup().el;
    expect(all.querySelector(".rw-main .rw-attention-view")).not.toBeNull();
    expect(all.querySelector(".rw-side .rw-predictions-view")).not.toBeNull();
    expect(all.querySelector(".rw-side .rw-lens-view")).not.toBeNull();
    expect(all.querySelector(".rw-top .rw-tokens-view")).not.toBeNull();
  });
});

describe("clean against intervened", () => {
  it("the lens shows the intervened run, marks cells whose top token changed, and toggles to the clean run", async () => {
    const { model, el } = setup();
    confirm(model, [{ type: "ablate", layer: 0, head: 0 }]);
    answer(
      model,
      "lens",
      {
        ids: header("int32", [2, 4], 0),
        probs: header("float32", [2, 4], 1),
        clean_ids: header("int32", [2, 4], 2),
        clean_probs: header("float32", [2, 4], 3),
        start: 0,
        vocab: { "1": "glass", "2": "rocket" },
      },
      [int32([1, 1, 1, 1, 1, 1, 1, 1]), float32(Array(8).fill(0.5)), int32([1, 1, 1, 1, 1, 1, 2, 2]), float32(Array(8).fill(0.9))],
      1,
    );
    await settle();
    const cell = () => el.querySelector('td[data-rw-token="3"][data-rw-layer="1"]') as HTMLElement;
    expect(cell().textContent).toBe("glass");
    expect(cell().classList.contains("rw-changed")).toBe(true);
    expect(cell().title).toContain('clean: "rocket" p=0.900');
    expect(el.querySelectorAll("td.rw-changed")).toHaveLength(2);
    (el.querySelector('[data-rw-lens-run="clean"]') as HTMLElement).click();
    expect(cell().textContent).toBe("rocket");
    expect(cell().title).toContain('intervened: "glass"');
  });

  it("the tokens are tinted by how the intervention changed each position's clean top prediction", async () => {
    const { model, el } = setup();
    confirm(model, [{ type: "ablate", layer: 1, head: 0 }]);
    const asked = model.sent.find((m) => m.what === "effects");
    expect(asked).toMatchObject({ start: 0, stop: 4 });
    answer(
      model,
      "effects",
      {
        top: header("int32", [4], 0),
        clean_p: header("float32", [4], 1),
        p: header("float32", [4], 2),
        clean_loss: header("float32", [4], 3),
        loss: header("float32", [4], 4),
        start: 0,
        vocab: { "7": "rocket" },
      },
      [int32([7, 7, 7, 7]), float32([0.9, 0.5, 0.9, 0.2]), float32([0.9, 0.5, 0.2, 0.2]), float32([0, 0, 0, NaN]), float32([0, 0, 1, NaN])],
      1,
    );
    await settle();
    const span = el.querySelector('.rw-token[data-rw-token="2"]') as HTMLElement;
    expect(span.title).toContain('clean top next "rocket" 90.0% \u2192 20.0% (\u221270.0pp)');
    expect(span.style.background).not.toBe("");
    expect((el.querySelector('.rw-token[data-rw-token="0"]') as HTMLElement).title).toContain("(0.0pp)"); // no change: no sign
    expect(el.querySelector(".rw-tokens-view [data-rw-colourbar]")!.textContent).toContain("\u221270.0pp");
  });
});

describe("view logic", () => {
  it("maps pooled pattern pixels to token positions and back", () => {
    const view = { values: { dtype: "float32" as const, shape: [2, 2], data: new Float32Array([1, 0, 0.5, 0.5]) }, window: [0, 8, 0, 8] as [number, number, number, number] };
    expect(cellAt(view, 1, 0)).toEqual({ query: 4, key: 0 });
    expect(pixelOf(view, 5, 1)).toEqual({ row: 1, col: 0 });
    expect(pixelOf({ ...view, window: [0, 4, 0, 8] }, 6, 1)).toBeNull();
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

  it("asks for the effects of the whole prompt, or a window around the selection of a long one", () => {
    expect(effectsWindow(3, 21)).toEqual([0, 21]);
    expect(effectsWindow(1500, 2048)).toEqual([988, 2012]);
    const effects = {
      top: { dtype: "int32" as const, shape: [2], data: new Int32Array([1, 1]) },
      clean_p: { dtype: "float32" as const, shape: [2], data: new Float32Array([0.5, 0.75]) },
      p: { dtype: "float32" as const, shape: [2], data: new Float32Array([0.25, 1]) },
      clean_loss: { dtype: "float32" as const, shape: [2], data: new Float32Array(2) },
      loss: { dtype: "float32" as const, shape: [2], data: new Float32Array(2) },
      start: 1,
      vocab: {},
    };
    expect(Array.from(probabilityChange(effects, 4))).toEqual([NaN, -0.25, 0.25, NaN]);
  });

  it("shows first the head score that differs most between heads: previous token on an ordinary prompt", () => {
    const names = ["previous_token", "induction", "duplicate_token", "first_token"];
    const scores = (rows: number[][]) => ({ dtype: "float32" as const, shape: [4, 2, 2], data: new Float32Array(rows.flat()) });
    const ordinary = scores([[0.6, 0.1, 0.2, 0.1], [0, 0, 0, 0], [0.1, 0.1, 0.1, 0.12], [0.9, 0.1, 0.5, 0.2]]);
    expect(defaultScore(ordinary, names)).toBe("previous_token"); // first token varies more, but says less
    const repeated = scores([[0.6, 0.1, 0.2, 0.1], [0.02, 0.02, 0.85, 0.3], [0.1, 0.1, 0.1, 0.12], [0.3, 0.1, 0.2, 0.1]]);
    expect(defaultScore(repeated, names)).toBe("induction");
  });
});
