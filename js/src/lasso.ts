// What a view shows over the projector's lasso: the kernel's average over the lassoed prompt positions (the
// predictions' mean next-token probabilities, the features' mean activations, a probe's mean class probabilities),
// in a block of its own under the view, captioned "... over N lassoed tokens"; hidden while there is no lasso.
import { h, type PanelParts, track } from "./dom";
import type { Reply, Selection, Store } from "./store";

/** The caption of an average over `n` lassoed tokens. */
export function lassoCaption(what: string, n: number): HTMLElement {
  return h("div", { class: "rw-caption", text: `${what} over ${n} lassoed token${n === 1 ? "" : "s"}` });
}

/** A block in `into` (the view's panel) showing `render(reply)` for the lasso's positions, asked for by `ask`, again
 * whenever the lasso, the run or one of the selection's `keys` (what else the answer depends on) changes. */
export function overLasso(
  parts: PanelParts,
  store: Store,
  ask: (tokens: number[]) => Promise<Reply | null>,
  render: (reply: Reply) => Node[],
  keys: (keyof Selection)[] = [],
  into: HTMLElement = parts.root,
): HTMLElement {
  const box = h("div", { class: "rw-lasso-over", data: { rwLassoOver: "" } });
  box.hidden = true;
  Object.assign(box.style, { marginTop: "6px", paddingTop: "4px", borderTop: "1px dashed var(--rw-border)" });
  into.appendChild(box);
  const fetch = () => {
    const tokens = store.selection.tokens ?? [];
    if (!tokens.length) {
      box.hidden = true;
      box.replaceChildren();
      delete box.dataset.rwOver;
      return;
    }
    track(parts, ask(tokens)).then((reply) => {
      if (!reply || !(store.selection.tokens ?? []).length) return;
      box.replaceChildren(...render(reply));
      box.dataset.rwOver = String(reply.data.over);
      box.hidden = false;
    }, () => undefined);
  };
  store.watch(["tokens", ...keys], fetch);
  store.on("generation", fetch);
  fetch();
  return box;
}

