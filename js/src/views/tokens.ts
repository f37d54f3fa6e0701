// Tokens: the prompt as text, wrapping; click (or arrow keys) selects a position; the positions in the projector's
// lasso are underlined. Colour shows, by priority:
// where the selected head attends from a hovered token, the selected SAE feature's or neuron's activation, or,
// with interventions, how each position's prediction changed (the clean run's top next token lost or gained).
import { type Tensor } from "../codec";
import { css, diverging, ink, type RGB, sequential } from "../colour";
import { arrowStep, colourBar, h, keepInView, onResize, panel, showToken, signed, track } from "../dom";
import type { Store } from "../store";

/** What a token's title adds for its kind. */
const KIND_NOTES: Record<string, string> = { bos: " · BOS (beginning of sequence)", special: " · special token" };

/** How each position's prediction changed: the clean run's top next token and its probability in both runs. */
export interface Effects {
  top: Tensor;
  clean_p: Tensor;
  p: Tensor;
  clean_loss: Tensor;
  loss: Tensor;
  start: number;
  vocab: Record<string, string>;
}

/** The [start, stop) positions an `effects` request covers (the kernel's `effects_window`). */
export function effectsWindow(token: number, n: number, max = 1024): [number, number] {
  const start = Math.max(0, Math.min(n - max, token - Math.floor(max / 2)));
  return [start, Math.min(n, start + max)];
}

/** The change in probability of the clean run's top next token at each position (intervened minus clean),
 * indexed by position; NaN where the answer does not cover it. */
export function probabilityChange(effects: Effects, n: number): Float32Array {
  const out = new Float32Array(n).fill(NaN);
  for (let i = 0; i < effects.p.data.length; i++) out[effects.start + i] = (effects.p.data[i] as number) - (effects.clean_p.data[i] as number);
  return out;
}

function pp(v: number): string {
  return signed(100 * v, 1, "pp");
}

export function mountTokens(el: HTMLElement, store: Store): void {
  const parts = panel("Tokens", "rw-tokens-view", store);
  const { root, body } = parts;
  const legend = h("div", { class: "rw-legend", data: { rwLegend: "" } });
  const line = h("div", {
    class: "rw-token-line",
    attrs: { role: "listbox", "aria-orientation": "horizontal", "aria-label": "tokens: arrow keys move the selected position" },
  });
  // the kernel's note on the prompt (e.g. mostly words the model does not know, read as <unk>)
  const warning = h("div", { class: "rw-warning", data: { rwWarning: "" } });
  const note = () => {
    warning.textContent = (store.model.get("warning") as string) ?? "";
    warning.hidden = !warning.textContent;
  };
  store.model.on("change:warning", note);
  note();
  body.append(warning, line, legend);
  el.appendChild(root);
  const ids = store.tokenIds;
  const n = store.tokens.length;
  // per token, from the kernel: "bos" (a BOS at position 0), "special" (e.g. a chat template's) or ""
  const kinds = (store.model.get("token_kinds") as string[] | undefined) ?? [];
  const titles = store.tokens.map((_, pos) => `position ${pos} · id ${ids[pos]}${KIND_NOTES[kinds[pos] ?? ""] ?? ""}`);
  const spans = store.tokens.map((text, pos) => {
    const cls = KIND_NOTES[kinds[pos] ?? ""] ? `rw-token rw-special rw-${kinds[pos]}` : "rw-token";
    return h("span", { class: cls, text: showToken(text), title: titles[pos], data: { rwToken: pos }, attrs: { role: "option", tabindex: -1 } });
  });
  line.append(...spans);
  if (kinds[0] === "bos") body.insertBefore(h("div", { class: "rw-info rw-bos-note", text: "the first token is BOS, which the tokenizer puts before the text" }), line);

  let neuron: Float32Array | null = null;
  let neuronClean = "";
  let feature: Float32Array | null = null;
  let featureClean = "";
  let effects: Effects | null = null;
  let attend: { values: ArrayLike<number>; query: number } | null = null;

  const colour = (rgb: RGB | null, span: HTMLElement) => {
    span.style.background = rgb ? css(rgb) : "";
    span.style.color = rgb ? ink(rgb) : "";
  };

  const paint = () => {
    const sel = store.selection;
    const palette = store.palette;
    const lassoed = new Set(sel.tokens ?? []); // the projector's lasso: underlined
    const shown = feature ?? neuron;
    const scaleMax = shown ? Math.max(1e-6, ...Array.from(shown, Math.abs)) : 1;
    const change = effects && store.interventions.length ? probabilityChange(effects, n) : null;
    const changeMax = change ? Math.max(0.05, ...Array.from(change).filter(Number.isFinite).map(Math.abs)) : 1;
    spans.forEach((span, pos) => {
      const selected = pos === sel.token;
      span.classList.toggle("rw-selected", selected);
      span.setAttribute("aria-selected", String(selected));
      span.tabIndex = selected ? 0 : -1;
      span.classList.toggle("rw-query", attend !== null && pos === attend.query);
      span.classList.toggle("rw-lassoed", lassoed.has(pos));
      let rgb: RGB | null = null;
      let title = titles[pos];
      if (attend) rgb = sequential(attend.values[pos] ?? 0, palette);
      else if (shown) rgb = diverging(shown[pos] / scaleMax, palette);
      else if (change && Number.isFinite(change[pos])) {
        rgb = diverging(change[pos] / changeMax, palette);
        const i = pos - effects!.start;
        const word = effects!.vocab[String(effects!.top.data[i])] ?? "?";
        title += ` · clean top next "${word}" ${(100 * (effects!.clean_p.data[i] as number)).toFixed(1)}% \u2192 ${(100 * (effects!.p.data[i] as number)).toFixed(1)}% (${pp(change[pos])})`;
      }
      colour(rgb, span);
      span.title = title;
    });
    let text: string;
    let bar: HTMLElement | null = null;
    if (attend) {
      text = `colour: attention of head ${sel.head_layer}.${sel.head} from position ${attend.query}`;
      bar = colourBar(palette, "sequential", "0", "1", "attention");
    } else if (feature && sel.feature != null) {
      text = `colour: SAE feature ${sel.feature}${featureClean && ` ${featureClean}`}`;
      bar = colourBar(palette, "diverging", signed(-scaleMax, 2), signed(scaleMax, 2), "activation", "0");
    } else if (neuron && sel.neuron !== null) {
      text = `colour: neuron ${sel.layer}.${sel.neuron}${neuronClean && ` ${neuronClean}`}`;
      bar = colourBar(palette, "diverging", signed(-scaleMax, 2), signed(scaleMax, 2), "activation", "0");
    } else if (change) {
      text = "colour: how the interventions changed each position's clean top prediction (its probability, intervened minus clean; hover for the word)";
      bar = colourBar(palette, "diverging", pp(-changeMax), pp(changeMax), "\u0394p", "0");
    } else text = "click a token (or use the arrow keys) to select it; hover one to see where the selected head attends from it";
    legend.replaceChildren(h("span", { text }), ...(bar ? [h("span", { text: " " }), bar] : []));
  };

  /** The per-token values of `what` (null when nothing is selected); a stale answer is ignored. The clean run's
   * values when the item is ablated (its own would read 0), if the kernel sent them. */
  const fetchValues = async (what: string, args: Record<string, unknown> | null, ablated: boolean, set: (v: Float32Array | null, clean: string) => void) => {
    if (args === null) {
      set(null, "");
      paint();
      return;
    }
    const reply = await track(parts, store.request(what, args, `tokens-${what}`)).catch(() => null);
    if (reply) {
      const clean = ablated && reply.data.clean !== undefined;
      const label = clean ? ((reply.data.clean_label as string | undefined) ?? "in the clean run (no interventions; it is ablated)") : "";
      set((clean ? reply.data.clean : reply.data.values).data as Float32Array, label);
      paint();
    }
  };
  const fetchNeuron = () => {
    const sel = store.selection;
    const args = sel.neuron == null ? null : { layer: sel.layer, index: sel.neuron };
    const ablated = sel.neuron != null && store.ablated({ layer: sel.layer, neuron: sel.neuron });
    return fetchValues("neuron", args, ablated, (v, clean) => ((neuron = v), (neuronClean = clean)));
  };
  const fetchFeature = () => {
    const sel = store.selection;
    const args = sel.feature == null ? null : { sae: sel.sae ?? 0, index: sel.feature };
    const ablated = sel.feature != null && store.ablated({ sae: sel.sae ?? 0, feature: sel.feature });
    return fetchValues("feature", args, ablated, (v, clean) => ((feature = v), (featureClean = clean)));
  };
  const fetchEffects = async () => {
    if (!store.shape.effects || !store.interventions.length) {
      effects = null;
      paint();
      return;
    }
    const [start, stop] = effectsWindow(store.selection.token, n, store.shape.max_effects);
    const reply = await track(parts, store.request("effects", { start, stop }, "tokens-effects")).catch(() => null);
    if (reply) {
      effects = reply.data as Effects;
      paint();
    }
  };

  const move = (token: number, focus: boolean) => {
    const next = Math.max(0, Math.min(n - 1, token));
    store.select({ token: next });
    keepInView(line, spans[next]);
    if (focus) spans[next]?.focus({ preventScroll: true });
  };
  line.addEventListener("click", (event) => {
    const target = (event.target as HTMLElement).closest("[data-rw-token]") as HTMLElement | null;
    if (target) store.select({ token: Number(target.dataset.rwToken) });
  });
  line.addEventListener("keydown", (event) => {
    const step = arrowStep(event);
    if (!step) return;
    event.preventDefault();
    const now = store.selection.token;
    move(step.home ? 0 : step.end ? n - 1 : now + step.dx + step.dy, true);
  });
  line.addEventListener("mouseover", (event) => {
    const target = (event.target as HTMLElement).closest("[data-rw-token]") as HTMLElement | null;
    if (target) store.emit("hover-query", Number(target.dataset.rwToken));
  });
  line.addEventListener("mouseleave", () => store.emit("hover-query", null));
  store.on("attend-row", (row: { values: ArrayLike<number>; query: number } | null) => {
    attend = row;
    paint();
  });
  let last = JSON.stringify([store.selection.layer, store.selection.neuron]);
  let lastFeature = JSON.stringify([store.selection.sae, store.selection.feature]);
  let lastWindow = effectsWindow(store.selection.token, n, store.shape.max_effects).join();
  store.on("selection", () => {
    const now = JSON.stringify([store.selection.layer, store.selection.neuron]);
    if (now !== last) {
      last = now;
      void fetchNeuron();
    }
    const nowFeature = JSON.stringify([store.selection.sae, store.selection.feature]);
    if (nowFeature !== lastFeature) {
      lastFeature = nowFeature;
      void fetchFeature();
    }
    const window = effectsWindow(store.selection.token, n, store.shape.max_effects).join();
    if (window !== lastWindow) {
      lastWindow = window;
      void fetchEffects();
    }
    keepInView(line, spans[store.selection.token]);
    paint();
  });
  store.on("generation", () => {
    void fetchNeuron();
    void fetchFeature();
    void fetchEffects();
  });
  store.on("theme", paint);
  void fetchNeuron();
  void fetchFeature(); // a feature may be selected already (from Python, or in a saved page)
  void fetchEffects();
  store.on("dispose", onResize(line, () => keepInView(line, spans[store.selection.token])));
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountTokens;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-warning { color: var(--rw-warn-fg); background: var(--rw-warn-bg); border: 1px solid var(--rw-warn-border); padding: 2px 6px; border-radius: 4px; margin-bottom: 4px; }
`;
