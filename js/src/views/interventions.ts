// Controls: the ablation mode, how clicks work (select; shift+click or an ablate button intervenes), the busy
// state, errors, and the list of interventions (each removable).
import { h, labelled, panel } from "../dom";
import { labelOf } from "../interventions";
import type { Store } from "../store";
import type { ModeInfo } from "../types";

/** What the view says about the gestures (clicks select; shift+click or the ablate buttons intervene). */
export const GESTURES = "click a head, neuron or feature to select it; shift+click it, or press its ablate button, to ablate it";
/** The same for an image explorer's views, by the model's kind (`shape.kind`): a CNN's channels, a ViT's heads and
 * patches. */
export const IMAGE_GESTURES: Record<string, string> = {
  cnn: "click a channel to select it; shift+click it to ablate it",
  vit: "click a head or a patch to select it; shift+click it to ablate it",
};

export function mountInterventions(el: HTMLElement, store: Store): void {
  const { root, body } = panel("Interventions", "rw-interventions-view", store, false);
  el.appendChild(root);
  const mode = h("select", { class: "rw-mode", title: "how an ablation replaces the activation", data: { rwMode: "" } });
  const options = () => {
    const modes: ModeInfo[] = store.shape.modes ?? [{ name: "zero", available: true }];
    mode.replaceChildren(
      ...modes.map((info) => {
        // the kernel says which modes exist and which can run now (mean and resample need reference texts)
        const why = info.available ? "" : ` (${info.reason ?? "unavailable"})`;
        const option = h("option", { text: `${info.name}${why}`, title: info.hint ? `${info.reason}: ${info.hint}` : "" });
        option.value = info.name;
        option.disabled = !info.available;
        return option;
      }),
    );
    mode.value = (store.model.get("mode") as string) ?? "zero";
  };
  options();
  const busy = h("span", { class: "rw-busy", text: "running\u2026", attrs: { role: "status" } });
  const clear = h("button", { class: "rw-small", text: "remove all", data: { rwClear: "" }, attrs: { "aria-label": "remove all interventions" } });
  const message = h("span", { class: "rw-error-text" });
  const dismiss = h("button", { class: "rw-small", text: "\u00d7", title: "dismiss", attrs: { "aria-label": "dismiss this error" } });
  const error = h("div", { class: "rw-error", data: { rwError: "" }, attrs: { role: "alert" } }, [message, dismiss]);
  const notice = h("div", { class: "rw-caption rw-notice", data: { rwNotice: "" }, attrs: { role: "status" } }); // saved pages
  const list = h("ul", { class: "rw-iv-list", attrs: { "aria-label": "interventions" } });
  const gestures = IMAGE_GESTURES[store.shape.kind as string] ?? GESTURES;
  const hint = h("div", { class: "rw-hint", text: gestures, data: { rwHint: "" } });
  const frozen = store.model.get("static")
    ? h("div", { class: "rw-caption", text: "static snapshot: these interventions are fixed; open the notebook to change them", data: { rwStatic: "" } })
    : null;
  const modeField = labelled("ablation mode", mode);
  body.append(h("div", { class: "rw-row" }, [list, clear, modeField, busy]), ...(frozen ? [frozen] : [hint]), error, notice);
  if (!store.editable) modeField.hidden = clear.hidden = hint.hidden = true;

  let dismissed = "";
  const paint = () => {
    mode.value = (store.model.get("mode") as string) ?? "zero";
    const items = store.interventions;
    list.replaceChildren(
      ...items.map((iv, i) =>
        h("li", { class: "rw-iv" }, [
          h("span", { text: labelOf(iv) }),
          store.editable
            ? h("button", {
                class: "rw-small rw-remove",
                text: "\u00d7",
                title: "remove",
                data: { rwRemove: i },
                attrs: { "aria-label": `remove ${labelOf(iv)}` },
              })
            : null,
        ]),
      ),
    );
    if (items.length === 0) list.appendChild(h("li", { class: "rw-empty", text: store.editable ? "no interventions" : "none" }));
    clear.disabled = items.length === 0;
    busy.hidden = !store.busy;
    root.closest(".rw-root")?.toggleAttribute("data-rw-busy", store.busy);
    const text = (store.model.get("error") as string) ?? "";
    if (text !== dismissed) dismissed = "";
    message.textContent = text;
    error.hidden = !text || text === dismissed;
    notice.textContent = (store.model.get("notice") as string) ?? "";
    notice.hidden = !notice.textContent;
  };

  dismiss.addEventListener("click", () => {
    dismissed = message.textContent ?? "";
    paint();
  });
  mode.addEventListener("change", () => store.setMode(mode.value));
  clear.addEventListener("click", () => store.setInterventions([], clear));
  list.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-remove]") as HTMLElement | null;
    if (!button) return;
    const index = Number(button.dataset.rwRemove);
    store.setInterventions(
      store.interventions.filter((_, i) => i !== index),
      root,
    );
  });
  store.on("shape", options);
  for (const event of ["intervention_list", "busy", "error", "mode"]) store.on(event, paint);
  store.model.on("change:notice", paint);
  paint();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountInterventions;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-iv-list { list-style: none; padding: 0; margin: 2px 0; display: flex; gap: 6px; flex-wrap: wrap; }
.rw-iv { background: var(--rw-chip-bg); border: 1px solid var(--rw-chip-border); border-radius: 10px; padding: 0 2px 0 8px;
  display: inline-flex; align-items: center; gap: 4px; color: var(--rw-fg); }
.rw-root .rw-iv button.rw-remove { border: none; background: none; border-radius: 8px; padding: 0 5px; font-weight: bold; color: var(--rw-fg); }
.rw-root .rw-iv button.rw-remove:hover { background: var(--rw-chip-border); }
.rw-empty { color: var(--rw-muted); }
.rw-busy { color: var(--rw-busy); }
.rw-error { color: #fff; background: #b3261e; padding: 2px 6px; border-radius: 4px; white-space: pre-wrap; display: flex; gap: 8px; align-items: flex-start; }
.rw-root .rw-error button { background: none; border: 1px solid #fff; color: #fff; padding: 0 5px; }
`;
