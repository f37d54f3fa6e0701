// Probes: accuracy by layer (click a layer to select it), each token's probability of a class at the
// selected layer, and steering along the probe's direction (strength in class gaps, the unit the chip shows). It opens
// on the probe's best layer (the kernel's default selection) and steers toward the class the probe does not read at
// the prompt's last token until the user picks one.
import { css, ink, sequential } from "../colour";
import { topContexts } from "../contexts";
import { colourBar, h, labelled, panel, showToken, slider, track } from "../dom";
import { lassoCaption, overLasso } from "../lasso";
import type { Reply, Store } from "../store";

export function mountProbes(el: HTMLElement, store: Store): void {
  const parts = panel("Probes", "rw-probes-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  store.probes.forEach((info, index) => {
    const section = h("div", { class: "rw-probe", data: { rwProbe: index } });
    const caption = h("div", { class: "rw-caption", text: `${info.kind} probe on ${info.site}: ${info.classes.join(" / ")}` });
    const layers = h("div", { class: "rw-row", attrs: { role: "group", "aria-label": "probe layer" } });
    const buttons = info.layers.map((layer) => {
      const b = h("button", { class: "rw-small rw-layer rw-probe-layer", data: { rwLayer: layer }, text: `L${layer}`, attrs: { "aria-label": `probe at layer ${layer}` } });
      layers.appendChild(b);
      return b;
    });
    const toward = h("select", { class: "rw-probe-class", data: { rwProbeClass: "" } });
    const colourKey = h("span");
    for (const name of info.classes) {
      const option = h("option", { text: name });
      option.value = name;
      toward.appendChild(option);
    }
    toward.value = info.classes[Math.min(1, info.classes.length - 1)];
    let towardChosen = false; // the first answer picks the class the probe does not read (unless the user chose)
    const legend = h("div", { class: "rw-legend" });
    const near = h("div", { class: "rw-row rw-probe-near" });
    const strip = h("div", { class: "rw-token-line" });
    const { input: strength, label: value } = slider(
      { min: -4, max: 4, step: 0.5, value: 2 },
      {
        title: "strength, in class gaps: 1 moves the residual stream by the distance between the class means along the direction",
        data: { rwProbeStrength: "" },
        label: "steering strength in class gaps",
      },
      (v) => `strength ${v} (class gaps)`,
    );
    const steer = h("button", { class: "rw-small", text: "steer", data: { rwProbeSteer: index }, attrs: { "aria-label": "steer toward the chosen class at the selected layer" } });
    const project = h("button", {
      class: "rw-small",
      text: "project out",
      title: "toggle removing the probe's direction from the residual stream at the selected layer",
      data: { rwProbeProject: index },
    });
    const steerRow = h("div", { class: "rw-row" }, [labelled("toward", toward), strength, value, steer, project]);
    const steerNote = h("div", {
      class: "rw-caption",
      data: { rwProbeNote: "" },
      text: "steering adds the direction at the selected layer; large strengths push the activations off-distribution (the text may stop making sense)",
    });
    if (!store.editable) steerRow.hidden = steerNote.hidden = true;
    const examples = h("div", { class: "rw-probe-examples", attrs: { "aria-label": "the probe direction's top contexts" } });
    section.append(caption, layers, steerRow, steerNote, h("div", { class: "rw-row" }, [legend, colourKey]), strip, near, examples);
    body.appendChild(section);

    let shown: Reply | null = null;
    const paint = () => {
      const layer = store.selection.layer;
      buttons.forEach((b, i) => {
        b.classList.toggle("rw-selected", info.layers[i] === layer);
        b.setAttribute("aria-pressed", String(info.layers[i] === layer));
      });
      if (!shown) return;
      const acc = shown.data.accuracy.data as Float32Array;
      buttons.forEach((b, i) => {
        b.textContent = `L${info.layers[i]} ${(100 * acc[i]).toFixed(0)}%`;
        b.setAttribute("aria-label", `probe at layer ${info.layers[i]}, held-out accuracy ${(100 * acc[i]).toFixed(0)}%`);
      });
      const probs = shown.data.probs;
      if (!towardChosen && shown.data.toward) {
        toward.value = shown.data.toward as string; // once: the class stays while the run changes under it
        towardChosen = true;
      }
      const c = info.classes.indexOf(toward.value);
      if (!probs) {
        legend.textContent = `no probe at layer ${layer}`;
        strip.replaceChildren();
        return;
      }
      legend.textContent = `colour: p(${toward.value}) at each token, layer ${shown.data.layer}`;
      colourKey.replaceChildren(colourBar(store.palette, "sequential", "0", "1", `p(${toward.value})`));
      const features = (shown.data.near_features as number[]) ?? [];
      const cosines = shown.data.near_cosines?.data as Float32Array | undefined;
      near.replaceChildren(
        ...(features.length ? [h("span", { class: "rw-axis", text: "SAE features nearest its direction: " })] : []),
        ...features.map((f, i) =>
          h("button", {
            class: "rw-neuron rw-feature",
            text: `f${f} cos ${cosines ? cosines[i].toFixed(2) : "?"}`,
            data: { rwFeature: f, rwSae: shown!.data.near_sae[i] },
          }),
        ),
      );
      const k = probs.shape[1];
      strip.replaceChildren(
        ...store.tokens.map((text, pos) => {
          const p = probs.data[pos * k + c] as number;
          const rgb = sequential(p, store.palette);
          const span = h("span", { class: "rw-token", text: showToken(text), title: `p(${toward.value}) = ${p.toFixed(3)}`, data: { rwToken: pos } });
          span.style.background = css(rgb);
          span.style.color = ink(rgb);
          return span;
        }),
      );
    };
    const fetch = async () => {
      const reply = await track(parts, store.request("probe", { probe: index, layer: store.selection.layer }, `probe-${index}`)).catch(() => null);
      if (reply) {
        shown = reply;
        paint();
      }
    };
    // the direction's top contexts over the corpus at the selected layer (examples= or texts=)
    const fetchExamples = () => {
      if (!store.shape.probe_examples) return;
      track(parts, store.request("probe_examples", { probe: index, layer: store.selection.layer }, `probe-examples-${index}`)).then((reply) => {
        if (!reply) return;
        const d = reply.data;
        if (d.layer !== store.selection.layer) return;
        const missing = info.layers.includes(d.layer) ? `the direction at layer ${d.layer}: not among the top examples given` : "";
        examples.replaceChildren(...(missing || d.tokens.length ? topContexts(d, store.palette, missing) : []));
      }, () => undefined);
    };
    layers.addEventListener("click", (event) => {
      const b = (event.target as HTMLElement).closest("[data-rw-layer]") as HTMLElement | null;
      if (b) store.select({ layer: Number(b.dataset.rwLayer) });
    });
    strip.addEventListener("click", (event) => {
      const t = (event.target as HTMLElement).closest("[data-rw-token]") as HTMLElement | null;
      if (t) store.select({ token: Number(t.dataset.rwToken) });
    });
    toward.addEventListener("change", () => {
      towardChosen = true;
      paint();
    });
    near.addEventListener("click", (event) => {
      const b = (event.target as HTMLElement).closest("[data-rw-feature]") as HTMLElement | null;
      if (b) store.select({ sae: Number(b.dataset.rwSae), feature: Number(b.dataset.rwFeature), neuron: null });
    });
    steer.addEventListener("click", () =>
      store.command({ type: "steer_probe", probe: index, layer: store.selection.layer, toward: toward.value, strength: Number(strength.value) }, steer),
    );
    project.addEventListener("click", () => store.command({ type: "project_probe", probe: index, layer: store.selection.layer }, project));
    let layer = store.selection.layer;
    store.on("selection", () => {
      if (store.selection.layer !== layer) {
        layer = store.selection.layer;
        void fetch();
        fetchExamples();
      } else paint();
    });
    store.on("generation", () => void fetch());
    store.on("theme", paint);
    void fetch();
    fetchExamples();
    // each class's probability averaged over the projector's lasso, at the selected layer
    const ask = (tokens: number[]) => store.request("probe_over", { probe: index, layer: store.selection.layer, tokens }, `probe-over-${index}`);
    overLasso(parts, store, ask, (reply) => {
      const mean = reply.data.mean?.data as Float32Array | undefined;
      const n = reply.data.over as number;
      if (!mean) return [lassoCaption(`no probe at layer ${reply.data.layer}: nothing to average`, n)];
      const shown = info.classes.map((name, c) => `p(${name}) ${mean[c].toFixed(2)}`).join(" \u00b7 ");
      return [lassoCaption(`layer ${reply.data.layer}: mean ${shown}`, n)];
    }, ["layer"], section);
  });
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountProbes;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-probes-view { order: 6; }
`;
