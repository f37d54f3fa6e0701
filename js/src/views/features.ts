// SAE features: the features most active at the selected token. A click selects one (its activation colours
// the tokens, its top contexts show below); shift+click or the ablate button toggles its ablation, and the
// slider steers with it (the scale multiplies its decoder vector, as in the chip). Ablated features stay listed.
import type { Tensor } from "../codec";
import { contextLines } from "../contexts";
import { h, labelled, panel, showToken, slider, track, wantsIntervention } from "../dom";
import { setSteer } from "../interventions";
import { lassoCaption, overLasso } from "../lasso";
import type { Reply, Store } from "../store";

function scaleText(value: number): string {
  return `\u00d7 ${value}`;
}

export function mountFeatures(el: HTMLElement, store: Store): void {
  const saes = store.saes;
  const parts = panel("SAE features", "rw-features-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const picker = h("select", { class: "rw-sae-picker", title: "which SAE" });
  saes.forEach((sae, i) => {
    const option = h("option", { text: `${sae.name} (${sae.d_sae} features at ${sae.hook})` });
    option.value = String(i);
    picker.appendChild(option);
  });
  const caption = h("div", { class: "rw-caption" });
  const list = h("div", { class: "rw-neuron-list", attrs: { role: "group", "aria-label": "SAE features" } });
  const ablate = h("button", { class: "rw-small rw-ablate-button", data: { rwAblate: "feature" } });
  const { input: strengthInput, label: strength } = slider(
    { min: -20, max: 20, step: 0.5, value: 4 },
    { title: "steering scale: the feature's decoder vector times this", data: { rwSteer: "" }, label: "steering scale" },
    scaleText,
  );
  const steer = h("button", { class: "rw-small", text: "steer", data: { rwSteerApply: "" } });
  const steerRow = h("div", { class: "rw-row" }, [ablate, h("span", { class: "rw-axis", text: "steer with it " }), strengthInput, strength, steer]);
  const dashboard = h("div", { class: "rw-dashboard" });
  body.append(h("div", { class: "rw-row" }, [labelled("SAE", picker)]), caption, list, steerRow, dashboard);
  if (!store.editable) steerRow.hidden = true;

  let top: { indices: Tensor; values: Tensor; position: number } | null = null;

  const current = () => saes[store.selection.sae ?? 0];
  const paint = () => {
    const sel = store.selection;
    const sae = current();
    picker.value = String(sel.sae ?? 0);
    const which = sel.sae ?? 0;
    steerRow.hidden = !store.editable || sel.feature == null;
    if (sel.feature != null) {
      const on = store.ablated({ sae: which, feature: sel.feature });
      ablate.textContent = on ? `restore f${sel.feature}` : `ablate f${sel.feature}`;
      ablate.setAttribute("aria-pressed", String(on));
      ablate.setAttribute("aria-label", on ? `restore SAE feature ${sel.feature}: remove its ablation` : `ablate SAE feature ${sel.feature}`);
      steer.setAttribute("aria-label", `steer with SAE feature ${sel.feature} at the scale set`);
    }
    if (!top || !sae) return;
    const ablated = store.interventions.filter((iv) => iv.type === "ablate" && iv.sae === which).map((iv) => iv.feature as number);
    const steered = new Set(store.interventions.filter((iv) => iv.type === "steer" && iv.sae === which).map((iv) => iv.feature));
    caption.textContent = top.indices.data.length ? `most active at position ${top.position}` : `no feature is active at position ${top.position}`;
    const listed = Array.from(top.indices.data, (index, i) => ({ index, value: top!.values.data[i] as number | null }));
    for (const index of ablated) if (!listed.some((item) => item.index === index)) listed.push({ index, value: null });
    list.replaceChildren(
      ...listed.map(({ index, value }) => {
        const isAblated = ablated.includes(index);
        const label = `SAE feature ${index}${value === null ? "" : `, activation ${value.toFixed(2)}`}${isAblated ? ", ablated" : ""}${steered.has(index) ? ", steered" : ""}`;
        const button = h("button", {
          class: "rw-neuron rw-feature",
          text: value === null ? `f${index}  ablated` : `f${index}  ${value.toFixed(2)}`,
          title: `${label}\nclick: select · shift+click: ${isAblated ? "restore" : "ablate"}`,
          data: { rwFeature: index, rwSae: which },
          attrs: { "aria-label": label, "aria-pressed": String(sel.feature === index) },
        });
        button.classList.toggle("rw-selected", sel.feature === index);
        button.classList.toggle("rw-ablated", isAblated);
        button.classList.toggle("rw-steered", steered.has(index));
        return button;
      }),
    );
  };

  const fetch = async () => {
    const { sae, token } = store.selection;
    const reply = await track(parts, store.request("features", { sae: sae ?? 0, position: token })).catch(() => null);
    if (!reply) return;
    top = reply.data as typeof top;
    paint();
  };

  const showDashboard = (reply: Reply | null) => {
    if (!reply) return;
    const d = reply.data;
    const rows = contextLines(d.tokens as string[][], d.values.data as Float32Array, d.peaks, store.palette);
    // density is null where the contexts come from the top examples given (examples=), which do not count activity
    const about = d.density == null
      ? rows.length ? `feature ${d.index}: top contexts (from the examples given):` : `feature ${d.index}: not among the top examples given`
      : `feature ${d.index}: active on ${(100 * d.density).toFixed(2)}% of tokens; top contexts:`;
    const shown: Node[] = [h("div", { class: "rw-caption", text: about }), ...rows];
    if (d.boosted.length) shown.push(h("div", { class: "rw-caption", text: `boosts: ${d.boosted.map(showToken).join(" ")}` }));
    if (d.suppressed.length) shown.push(h("div", { class: "rw-caption", text: `suppresses: ${d.suppressed.map(showToken).join(" ")}` }));
    dashboard.replaceChildren(...shown);
  };

  const fetchDashboard = () => {
    const { sae, feature } = store.selection;
    if (feature == null || !store.shape.dashboards) {
      dashboard.replaceChildren();
      return;
    }
    track(parts, store.request("dashboard", { sae: sae ?? 0, index: feature })).then(showDashboard, () => undefined);
  };

  picker.addEventListener("change", () => store.select({ sae: Number(picker.value), feature: null }));
  list.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-feature]") as HTMLElement | null;
    if (!button) return;
    const feature = Number(button.dataset.rwFeature);
    store.select({ feature, neuron: null });
    if (store.editable && wantsIntervention(event)) store.toggle({ sae: store.selection.sae ?? 0, feature }, button);
  });
  ablate.addEventListener("click", () => {
    const feature = store.selection.feature;
    if (feature != null) store.toggle({ sae: store.selection.sae ?? 0, feature }, ablate);
  });
  steer.addEventListener("click", () => {
    const feature = store.selection.feature;
    if (feature == null) return;
    store.setInterventions(setSteer(store.interventions, store.selection.sae ?? 0, feature, Number(strengthInput.value)), steer);
  });
  let last = "";
  let lastFeature = "";
  store.on("selection", () => {
    const sel = store.selection;
    const now = `${sel.sae}/${sel.token}`;
    if (now !== last) {
      last = now;
      void fetch();
    }
    const feature = `${sel.sae}/${sel.feature}`;
    if (feature !== lastFeature) {
      lastFeature = feature;
      fetchDashboard();
    }
    paint();
  });
  store.on("intervention_list", paint);
  store.on("theme", () => void fetchDashboard());
  store.on("generation", () => void fetch());
  last = `${store.selection.sae}/${store.selection.token}`;
  lastFeature = `${store.selection.sae}/${store.selection.feature}`;
  void fetch();
  fetchDashboard(); // a feature may be selected already (from Python, or in a saved page)
  // the features of the largest mean activation over the projector's lasso; a click selects one
  const over = overLasso(parts, store, (tokens) => store.request("features_over", { sae: store.selection.sae ?? 0, tokens }), (reply) => {
    const { indices, values, over: n } = reply.data as { indices: Tensor; values: Tensor; over: number };
    const buttons = Array.from(indices.data, (index, i) =>
      h("button", {
        class: "rw-neuron rw-feature",
        text: `f${index}  ${(values.data[i] as number).toFixed(2)}`,
        data: { rwFeature: index },
        attrs: { "aria-label": `SAE feature ${index}, mean activation ${(values.data[i] as number).toFixed(2)}` },
      }),
    );
    const caption = lassoCaption(buttons.length ? "most active on average" : "no feature is active on average", n);
    return [caption, h("div", { class: "rw-neuron-list" }, buttons)];
  }, ["sae"], body);
  body.insertBefore(over, steerRow);
  over.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-feature]") as HTMLElement | null;
    if (button) store.select({ feature: Number(button.dataset.rwFeature), neuron: null });
  });
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountFeatures;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-features-view { order: 5; }
.rw-context { font-family: var(--rw-mono); font-size: 11px; margin: 1px 0; white-space: pre-wrap; }
.rw-ctx-token { padding: 0 1px; margin-right: 3px; border-radius: 2px; }
`;
