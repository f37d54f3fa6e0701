// SAE features: the features most active at the selected token; click one to select it (its
// activation colours the tokens) and toggle its ablation; steer with it by a strength slider; its
// top contexts over the explorer's texts.
import type { Tensor } from "../codec";
import { h, panel, showToken, slider } from "../dom";
import { setSteer } from "../interventions";
import type { Reply, Store } from "../store";

export function mountFeatures(el: HTMLElement, store: Store): void {
  const saes = store.saes;
  const { root, body } = panel("SAE features", "rw-features-view");
  el.appendChild(root);
  const picker = h("select", { class: "rw-sae-picker", title: "which SAE" });
  saes.forEach((sae, i) => {
    const option = h("option", { text: `${sae.name} (${sae.d_sae} features at ${sae.hook})` });
    option.value = String(i);
    picker.appendChild(option);
  });
  const caption = h("div", { class: "rw-caption" });
  const list = h("div", { class: "rw-neuron-list" });
  const { input: strengthInput, label: strength } = slider(
    { min: -20, max: 20, step: 0.5, value: 4 },
    { title: "steering strength", data: { rwSteer: "" } },
  );
  const steer = h("button", { class: "rw-small", text: "steer", data: { rwSteerApply: "" } });
  const steerRow = h("div", { class: "rw-row" }, [h("span", { class: "rw-axis", text: "steer with the selected feature " }), strengthInput, strength, steer]);
  const dashboard = h("div", { class: "rw-dashboard" });
  body.append(h("div", { class: "rw-row" }, [picker]), caption, list, steerRow, dashboard);
  if (!store.editable) steerRow.hidden = true;

  let top: { indices: Tensor; values: Tensor; position: number } | null = null;

  const current = () => saes[store.selection.sae ?? 0];
  const paint = () => {
    const sel = store.selection;
    const sae = current();
    picker.value = String(sel.sae ?? 0);
    steerRow.hidden = !store.editable || sel.feature == null;
    if (!top || !sae) return;
    const which = sel.sae ?? 0;
    const ablated = new Set(store.interventions.filter((iv) => iv.type === "ablate" && iv.sae === which).map((iv) => iv.feature));
    const steered = new Set(store.interventions.filter((iv) => iv.type === "steer" && iv.sae === which).map((iv) => iv.feature));
    caption.textContent = top.indices.data.length
      ? `most active at position ${top.position} (click: ${store.editable && store.action === "ablate" ? "ablate" : "select"})`
      : `no feature is active at position ${top.position}`;
    list.replaceChildren(
      ...Array.from(top.indices.data, (index, i) => {
        const button = h("button", {
          class: "rw-neuron rw-feature",
          text: `f${index}  ${(top!.values.data[i] as number).toFixed(2)}`,
          data: { rwFeature: index, rwSae: sel.sae ?? 0 },
        });
        button.classList.toggle("rw-selected", sel.feature === index);
        button.classList.toggle("rw-ablated", ablated.has(index));
        button.classList.toggle("rw-steered", steered.has(index));
        return button;
      }),
    );
  };

  const fetch = async () => {
    const { sae, token } = store.selection;
    const reply = await store.request("features", { sae: sae ?? 0, position: token }).catch(() => null);
    if (!reply) return;
    top = reply.data as typeof top;
    paint();
  };

  const showDashboard = (reply: Reply | null) => {
    if (!reply) return;
    const d = reply.data;
    const values = d.values.data as Float32Array;
    let offset = 0;
    const rows = (d.tokens as string[][]).map((tokens, c) => {
      const peak = Math.max(1e-9, values[offset + d.peaks[c]]);
      const line = h("div", { class: "rw-context" });
      tokens.forEach((token, i) => {
        const span = h("span", { class: "rw-ctx-token", text: showToken(token), title: values[offset + i].toFixed(3) });
        span.style.background = `rgba(230, 126, 34, ${Math.max(0, values[offset + i]) / peak})`;
        line.appendChild(span);
      });
      offset += tokens.length;
      return line;
    });
    const parts: Node[] = [
      h("div", { class: "rw-caption", text: `feature ${d.index}: active on ${(100 * d.density).toFixed(2)}% of tokens; top contexts:` }),
      ...rows,
    ];
    if (d.boosted.length) parts.push(h("div", { class: "rw-caption", text: `boosts: ${d.boosted.map(showToken).join(" ")}` }));
    if (d.suppressed.length) parts.push(h("div", { class: "rw-caption", text: `suppresses: ${d.suppressed.map(showToken).join(" ")}` }));
    dashboard.replaceChildren(...parts);
  };

  const fetchDashboard = () => {
    const { sae, feature } = store.selection;
    if (feature == null || !store.shape.dashboards) {
      dashboard.replaceChildren();
      return;
    }
    store.request("dashboard", { sae: sae ?? 0, index: feature }).then(showDashboard, () => undefined);
  };

  picker.addEventListener("change", () => store.select({ sae: Number(picker.value), feature: null }));
  list.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-feature]") as HTMLElement | null;
    if (!button) return;
    const feature = Number(button.dataset.rwFeature);
    store.select({ feature, neuron: null });
    if (store.editable && store.action === "ablate") store.toggle({ sae: store.selection.sae ?? 0, feature });
  });
  steer.addEventListener("click", () => {
    const feature = store.selection.feature;
    if (feature == null) return;
    store.setInterventions(setSteer(store.interventions, store.selection.sae ?? 0, feature, Number(strengthInput.value)));
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
  store.on("generation", () => void fetch());
  last = `${store.selection.sae}/${store.selection.token}`;
  lastFeature = `${store.selection.sae}/${store.selection.feature}`;
  void fetch();
  fetchDashboard(); // a feature may be selected already (from Python, or in a saved page)
}
