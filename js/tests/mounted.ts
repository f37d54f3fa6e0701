// The views mounted on a fake model (fake.ts), and the gestures and kernel answers the tests drive them with.
import { mount } from "../src/widget";
import { FakeModel, traits } from "./fake";

export function setup(extra: Record<string, unknown> = {}, n = 4) {
  const model = new FakeModel(traits(n, extra));
  const el = document.createElement("div");
  document.body.appendChild(el);
  const store = mount(model, el);
  return { model, el, store };
}

export const click = (el: Element, init: MouseEventInit = {}) => el.dispatchEvent(new MouseEvent("click", { bubbles: true, ...init }));
export const key = (el: Element, key: string, init: KeyboardEventInit = {}) =>
  el.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, ...init }));
export const sets = (model: FakeModel) => model.sent.filter((m) => m.type === "set");

/** The kernel lists `ivs` (each with a label and key) and confirms the last set. */
export function confirm(model: FakeModel, ivs: Record<string, unknown>[], gen = 1) {
  model.change("intervention_list", ivs.map((iv, i) => ({ label: `iv ${i}`, key: `k${i}`, ...iv })));
  const all = sets(model);
  const last = all[all.length - 1];
  if (last) model.deliver({ type: "applied", id: last.id, gen });
  model.change("generation", gen);
}
