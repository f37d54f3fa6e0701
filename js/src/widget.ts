// anywidget entry point: one store per widget, and the views the kernel asked for, linked through it.
import { decode, type TensorMessage } from "./codec";
import { type SavedReply, StaticModel } from "./static";
import { Store } from "./store";
import type { WidgetModel } from "./types";
import { columns, followTheme, followWidth, placeOf, settle } from "./layout";
import { CSS } from "./style";
import { VIEWS as FOUND } from "virtual:repwidget-views";

/** What a view's module (`src/views/<name>.ts`, named like its kernel panel) exports. */
export interface ViewModule {
  /** build the view in `el` (its column), linked to the others through `store` */
  mount: (el: HTMLElement, store: Store) => void;
  /** its own styles, added after the shared ones */
  styles?: string;
}

/** Every view, by name: found in src/views/ at build time (views.mjs), not listed here. */
export const VIEWS = FOUND as Record<string, ViewModule>;

/** The shared styles, then each view's. */
export const STYLES = [CSS, ...Object.values(VIEWS).map((view) => view.styles ?? "")].join("");

/** The styles, once per document or shadow root (marimo mounts widgets in a shadow root). */
function ensureStyle(el: HTMLElement): void {
  const place = () => {
    const root = el.getRootNode();
    const host = root instanceof ShadowRoot ? root : el.ownerDocument.head;
    if (host.querySelector("style[data-repwidget-style]")) return;
    const style = el.ownerDocument.createElement("style");
    style.dataset.repwidgetStyle = "";
    style.textContent = STYLES;
    host.appendChild(style);
  };
  place();
  // a host that renders into a detached element and attaches it to a shadow root afterwards: look again then
  if (!el.isConnected && typeof requestAnimationFrame !== "undefined") requestAnimationFrame(place);
}

/** Build every view listed in the model's `views` trait inside `el`, each in its column (layout.ts). */
export function mount(model: WidgetModel, el: HTMLElement): Store {
  ensureStyle(el);
  const parts = columns(el.ownerDocument);
  el.replaceChildren(parts.root);
  const store = new Store(model);
  const stop = [followWidth(parts.root), followTheme(parts.root, store)];
  const shape = (model.get("shape") as Record<string, unknown>) ?? {};
  for (const name of (model.get("views") as string[]) ?? []) {
    VIEWS[name]?.mount(parts[placeOf(name, shape)], store);
  }
  settle(parts);
  store.on("dispose", () => stop.forEach((f) => f()));
  // a new text (a continuation shown in every view): every view is built again for it
  store.on("token_ids", () =>
    queueMicrotask(() => {
      if (store.successor || store.disposed) return;
      store.dispose();
      store.successor = mount(model, el);
    }),
  );
  return store;
}

/** anywidget's render: the views, and a cleanup that stops this view listening to the model when it is removed. */
function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  const store = mount(model, el);
  return () => store.current().dispose();
}

/** Build the views from a saved snapshot (`ex.save_html`): no kernel, the saved answers only. */
export function renderStatic(el: HTMLElement, state: Record<string, unknown>, replies: SavedReply[]): Store {
  return mount(new StaticModel(state, replies), el);
}

export { decode, type TensorMessage };
export default { render };
