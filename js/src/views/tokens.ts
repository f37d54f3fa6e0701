// Tokens: the prompt as text; click selects a position; colour shows a neuron's activation, or, while
// hovering a token, where the selected head attends from it.
import { css, diverging, ink, sequential } from "../colour";
import { h, panel, showToken } from "../dom";
import type { Store } from "../store";

/** What a token's title adds for its kind. */
const KIND_NOTES: Record<string, string> = { bos: " · BOS (beginning of sequence)", special: " · special token" };

export function mountTokens(el: HTMLElement, store: Store): void {
  const { root, body } = panel("Tokens", "rw-tokens-view");
  const legend = h("div", { class: "rw-legend" });
  const line = h("div", { class: "rw-token-line" });
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
  // per token, from the kernel: "bos" (a BOS at position 0), "special" (e.g. a chat template's) or ""
  const kinds = (store.model.get("token_kinds") as string[] | undefined) ?? [];
  const spans = store.tokens.map((text, pos) => {
    const kind = KIND_NOTES[kinds[pos] ?? ""] ?? "";
    const cls = kind ? `rw-token rw-special rw-${kinds[pos]}` : "rw-token";
    return h("span", { class: cls, text: showToken(text), title: `position ${pos} · id ${ids[pos]}${kind}`, data: { rwToken: pos } });
  });
  line.append(...spans);
  if (kinds[0] === "bos") body.insertBefore(h("div", { class: "rw-info rw-bos-note", text: "the first token is BOS, which the tokenizer puts before the text" }), line);

  let neuron: Float32Array | null = null;
  let feature: Float32Array | null = null;
  let attend: { values: ArrayLike<number>; query: number } | null = null;

  const paint = () => {
    const sel = store.selection;
    const shown = feature ?? neuron;
    const scaleMax = shown ? Math.max(1e-6, ...Array.from(shown, Math.abs)) : 1;
    spans.forEach((span, pos) => {
      span.classList.toggle("rw-selected", pos === sel.token);
      span.classList.toggle("rw-query", attend !== null && pos === attend.query);
      let rgb: [number, number, number] | null = null;
      if (attend) rgb = sequential(attend.values[pos] ?? 0);
      else if (shown) rgb = diverging(shown[pos] / scaleMax);
      span.style.background = rgb ? css(rgb) : "";
      span.style.color = rgb ? ink(rgb) : "";
    });
    if (attend) legend.textContent = `colour: attention of head ${sel.layer}.${sel.head} from position ${attend.query}`;
    else if (feature && sel.feature != null)
      legend.textContent = `colour: SAE feature ${sel.feature} (max activation ${scaleMax.toFixed(2)})`;
    else if (neuron && sel.neuron !== null)
      legend.textContent = `colour: neuron ${sel.layer}.${sel.neuron} (max |activation| ${scaleMax.toFixed(2)})`;
    else legend.textContent = "click a token to select it; hover one to see where the selected head attends from it";
  };

  /** The per-token values of `what` (null when nothing is selected); a stale answer is ignored. */
  const fetchValues = async (what: string, args: Record<string, unknown> | null, set: (v: Float32Array | null) => void) => {
    if (args === null) {
      set(null);
      paint();
      return;
    }
    const reply = await store.request(what, args, `tokens-${what}`).catch(() => null);
    if (reply) {
      set(reply.data.values.data as Float32Array);
      paint();
    }
  };
  const fetchNeuron = () => {
    const sel = store.selection;
    const args = sel.neuron == null ? null : { layer: sel.layer, index: sel.neuron };
    return fetchValues("neuron", args, (v) => (neuron = v));
  };
  const fetchFeature = () => {
    const sel = store.selection;
    const args = sel.feature == null ? null : { sae: sel.sae ?? 0, index: sel.feature };
    return fetchValues("feature", args, (v) => (feature = v));
  };

  line.addEventListener("click", (event) => {
    const target = (event.target as HTMLElement).closest("[data-rw-token]") as HTMLElement | null;
    if (target) store.select({ token: Number(target.dataset.rwToken) });
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
    paint();
  });
  store.on("generation", () => {
    void fetchNeuron();
    void fetchFeature();
  });
  void fetchNeuron();
  void fetchFeature(); // a feature may be selected already (from Python, or in a saved page)
}
