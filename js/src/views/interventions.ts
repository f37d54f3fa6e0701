// Controls: what a click does, the ablation mode, the busy state, errors, and the list of
// interventions (each removable).
import { h, panel } from "../dom";
import { labelOf } from "../interventions";
import type { Store } from "../store";

export function mountInterventions(el: HTMLElement, store: Store): void {
  const { root, body } = panel("Interventions", "rw-interventions-view");
  el.appendChild(root);
  const action = h("select", { class: "rw-action", title: "what clicking a head or a neuron does", data: { rwAction: "" } });
  for (const value of ["ablate", "select"]) {
    const option = h("option", { text: value === "ablate" ? "click toggles ablation" : "click only selects" });
    option.value = value;
    action.appendChild(option);
  }
  const mode = h("select", { class: "rw-mode", title: "how an ablation replaces the activation", data: { rwMode: "" } });
  for (const info of store.shape.modes ?? [{ name: "zero", available: true }]) {
    // the kernel says which modes exist and which can run now (mean and resample need reference texts)
    const why = info.available ? "" : ` (${info.reason ?? "unavailable"})`;
    const option = h("option", { text: `${info.name} ablation${why}`, title: info.hint ? `${info.reason}: ${info.hint}` : "" });
    option.value = info.name;
    option.disabled = !info.available;
    mode.appendChild(option);
  }
  const busy = h("span", { class: "rw-busy", text: "running\u2026" });
  const clear = h("button", { class: "rw-small", text: "remove all", data: { rwClear: "" } });
  const error = h("div", { class: "rw-error", data: { rwError: "" } });
  const list = h("ul", { class: "rw-iv-list" });
  const frozen = store.model.get("static")
    ? h("div", { class: "rw-caption", text: "static snapshot: these interventions are fixed; open the notebook to change them", data: { rwStatic: "" } })
    : null;
  body.append(h("div", { class: "rw-row" }, [action, mode, clear, busy]), ...(frozen ? [frozen] : []), error, list);
  if (!store.editable) {
    action.hidden = mode.hidden = clear.hidden = true;
  }

  const paint = () => {
    mode.value = (store.model.get("mode") as string) ?? "zero";
    const items = store.interventions;
    list.replaceChildren(
      ...items.map((iv, i) =>
        h("li", { class: "rw-iv" }, [
          h("span", { text: labelOf(iv) }),
          store.editable ? h("button", { class: "rw-small rw-remove", text: "\u00d7", title: "remove", data: { rwRemove: i } }) : null,
        ]),
      ),
    );
    if (items.length === 0) list.appendChild(h("li", { class: "rw-empty", text: store.editable ? "none: click a head or a neuron" : "none" }));
    clear.disabled = items.length === 0;
    busy.hidden = !store.busy;
    root.closest(".rw-root")?.toggleAttribute("data-rw-busy", store.busy);
    const message = (store.model.get("error") as string) ?? "";
    error.textContent = message;
    error.hidden = !message;
  };

  action.addEventListener("change", () => {
    store.action = action.value as "ablate" | "select";
  });
  mode.addEventListener("change", () => store.setMode(mode.value));
  clear.addEventListener("click", () => store.setInterventions([]));
  list.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-remove]") as HTMLElement | null;
    if (!button) return;
    const index = Number(button.dataset.rwRemove);
    store.setInterventions(store.interventions.filter((_, i) => i !== index));
  });
  for (const event of ["intervention_list", "busy", "error", "mode"]) store.on(event, paint);
  paint();
}
