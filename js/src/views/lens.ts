// Logit lens: for positions around the selected token, the top next token after every layer (the top row is the
// model's output). With interventions it shows the intervened run or, toggled, the clean one; cells whose top token
// differs between the two are underlined. The selected position's column is always scrolled into view; arrow keys
// move the selection (left/right: position, up/down: layer). Given a tuned lens (the kernel's `shape.tuned_lens`), a
// logit / tuned toggle reads the same positions through it (the shared selection's `lens_kind`).
import { at, type Tensor } from "../codec";
import { css, ink, sequential } from "../colour";
import { arrowStep, colourBar, h, keepInView, onResize, panel, showToken, track } from "../dom";
import type { Store } from "../store";

/** How many positions the lens shows at once, around the selected token (the kernel's `shape.lens_width`). */
export const LENS_WIDTH = 16;

/** The [start, stop) window of `width` positions around `token` inside `0..n`. */
export function lensWindow(token: number, n: number, width = LENS_WIDTH): [number, number] {
  const start = Math.max(0, Math.min(n - width, token - Math.floor(width / 2)));
  return [Math.max(0, start), Math.min(n, Math.max(0, start) + width)];
}

/** The lenses the view reads through (`data-rw-lens-kind`). */
export const LENS_KINDS = ["logit", "tuned"] as const;
export type LensKind = (typeof LENS_KINDS)[number];

/** The lens the view shows: the selection's `lens_kind` when the kernel has a tuned lens, else the logit lens. */
export function lensKind(selection: { [key: string]: unknown }, tuned: boolean): LensKind {
  return tuned && selection.lens_kind === "tuned" ? "tuned" : "logit";
}

interface LensReply {
  ids: Tensor;
  probs: Tensor;
  clean_ids?: Tensor;
  clean_probs?: Tensor;
  start: number;
  vocab: Record<string, string>;
}

export function mountLens(el: HTMLElement, store: Store): void {
  const { n_layers, n_tokens, lens_width = LENS_WIDTH, tuned_lens = false } = store.shape;
  const parts = panel("Logit lens", "rw-lens-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const table = h("table", {
    class: "rw-lens",
    attrs: { role: "grid", "aria-label": "logit lens: the top next token after each layer; arrow keys move the selection" },
  });
  const scroll = h("div", { class: "rw-lens-scroll" }, [table]);
  const showing = { run: "intervened" as "intervened" | "clean" };
  const buttons = (["intervened", "clean"] as const).map((run) =>
    h("button", { text: run, data: { rwLensRun: run }, attrs: { "aria-pressed": String(run === showing.run) } }),
  );
  const toggle = h("span", { class: "rw-toggle", attrs: { role: "group", "aria-label": "which run the lens shows" } }, buttons);
  const kindButtons = LENS_KINDS.map((kind) =>
    h("button", { text: kind, data: { rwLensKind: kind }, title: kind === "tuned" ? "read through the tuned lens's translators" : "read through the final norm and unembedding alone" }),
  );
  const kinds = h("span", { class: "rw-toggle", attrs: { role: "group", "aria-label": "which lens: logit or tuned" } }, kindButtons);
  kinds.hidden = !tuned_lens;
  const bar = h("span");
  const caption = h("div", { class: "rw-caption", text: "top next token after each layer (the top row is the model's output); colour: its probability" });
  body.append(h("div", { class: "rw-row" }, [caption, kinds, toggle, bar]), scroll);
  let shown: LensReply | null = null;

  const paint = () => {
    if (!shown) return;
    const hadFocus = table.contains(document.activeElement);
    const sel = store.selection;
    const tokens = store.tokens;
    const width = shown.ids.shape[1];
    const both = shown.clean_ids !== undefined;
    const kind = lensKind(store.selection, Boolean(tuned_lens));
    kindButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.rwLensKind === kind)));
    parts.root.querySelector("h4 > span")!.textContent = kind === "tuned" ? "Tuned lens" : "Logit lens"; // the title says which
    toggle.hidden = !both;
    if (!both) showing.run = "intervened";
    buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.rwLensRun === showing.run)));
    const ids = showing.run === "clean" && both ? shown.clean_ids! : shown.ids;
    const probs = showing.run === "clean" && both ? shown.clean_probs! : shown.probs;
    const other = both ? (showing.run === "clean" ? shown.ids : shown.clean_ids!) : null;
    const otherProbs = both ? (showing.run === "clean" ? shown.probs : shown.clean_probs!) : null;
    bar.replaceChildren(colourBar(store.palette, "sequential", "0", "1", "p"));
    const header = h("tr", {}, [h("th", { class: "rw-lens-layer", text: "" })]);
    for (let i = 0; i < width; i++) {
      const pos = shown.start + i;
      const th = h("th", { class: "rw-lens-token", text: showToken(tokens[pos] ?? ""), title: `position ${pos}`, data: { rwToken: pos } });
      th.classList.toggle("rw-selected", pos === sel.token);
      header.appendChild(th);
    }
    const rows = [header];
    for (let layer = n_layers - 1; layer >= 0; layer--) {
      const tr = h("tr", { class: layer === n_layers - 1 ? "rw-lens-output" : "" }, [
        h("th", { class: "rw-lens-layer rw-axis", text: `L${layer}`, data: { rwLayer: layer }, title: layer === n_layers - 1 ? "the last layer: the model's output" : `after block ${layer}` }),
      ]);
      for (let i = 0; i < width; i++) {
        const pos = shown.start + i;
        const id = at(ids, layer, i);
        const p = at(probs, layer, i);
        const word = shown.vocab[String(id)] ?? String(id);
        const rgb = sequential(p, store.palette);
        const selected = pos === sel.token && layer === sel.layer;
        let title = `after layer ${layer}, position ${pos}: "${word}" p=${p.toFixed(3)}`;
        const changed = other !== null && at(other, layer, i) !== id;
        if (other !== null && changed) {
          const then = shown.vocab[String(at(other, layer, i))] ?? "?";
          title += `; ${showing.run === "clean" ? "intervened" : "clean"}: "${then}" p=${at(otherProbs!, layer, i).toFixed(3)}`;
        }
        const td = h("td", {
          class: "rw-lens-cell",
          text: showToken(word),
          title,
          data: { rwLayer: layer, rwToken: pos },
          attrs: { role: "gridcell", tabindex: selected ? 0 : -1, "aria-selected": String(selected), "aria-label": title },
        });
        td.style.background = css(rgb);
        td.style.color = ink(rgb);
        td.classList.toggle("rw-selected", selected);
        td.classList.toggle("rw-changed", changed);
        tr.appendChild(td);
      }
      rows.push(tr);
    }
    table.replaceChildren(...rows);
    // nothing focusable when the selected position's layer row is not shown: the selected column's top cell is
    if (!table.querySelector('td[tabindex="0"]')) table.querySelector<HTMLElement>(`td[data-rw-token="${sel.token}"]`)?.setAttribute("tabindex", "0");
    const frozen = (header.firstChild as HTMLElement).getBoundingClientRect().width;
    scroll.dataset.rwStickyLeft = String(frozen);
    scroll.style.scrollPaddingLeft = `${frozen}px`; // columns snap just right of the frozen layer labels
    const column = table.querySelector<HTMLElement>(`th[data-rw-token="${sel.token}"]`);
    keepInView(scroll, column);
    if (hadFocus) table.querySelector<HTMLElement>('td[tabindex="0"]')?.focus({ preventScroll: true });
  };

  const fetch = async () => {
    const [start, stop] = lensWindow(store.selection.token, n_tokens, lens_width);
    const lens = lensKind(store.selection, Boolean(tuned_lens));
    const reply = await track(parts, store.request("lens", { start, stop, lens })).catch(() => null);
    if (!reply) return;
    shown = reply.data as LensReply;
    paint();
  };

  table.addEventListener("click", (event) => {
    const cell = (event.target as HTMLElement).closest("[data-rw-token],[data-rw-layer]") as HTMLElement | null;
    if (!cell) return;
    const change: { token?: number; layer?: number } = {};
    if (cell.dataset.rwToken !== undefined) change.token = Number(cell.dataset.rwToken);
    if (cell.dataset.rwLayer !== undefined) change.layer = Number(cell.dataset.rwLayer);
    store.select(change);
  });
  table.addEventListener("keydown", (event) => {
    const step = arrowStep(event);
    if (!step) return;
    event.preventDefault();
    const { token, layer } = store.selection;
    const next = step.home ? 0 : step.end ? n_tokens - 1 : Math.max(0, Math.min(n_tokens - 1, token + step.dx));
    store.select({ token: next, layer: Math.max(0, Math.min(n_layers - 1, layer - step.dy)) }); // up: a later layer
    table.querySelector<HTMLElement>('td[tabindex="0"]')?.focus({ preventScroll: true });
  });
  toggle.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-lens-run]") as HTMLElement | null;
    if (!button) return;
    showing.run = button.dataset.rwLensRun as "intervened" | "clean";
    paint();
  });
  kinds.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-rw-lens-kind]") as HTMLElement | null;
    if (button) store.select({ lens_kind: button.dataset.rwLensKind as LensKind });
  });
  // what is fetched: the window of positions and the lens read through
  const wanted = () => [...lensWindow(store.selection.token, n_tokens, lens_width), lensKind(store.selection, Boolean(tuned_lens))].join();
  let window = wanted();
  store.on("selection", () => {
    const now = wanted();
    if (now !== window) {
      window = now;
      void fetch();
    } else paint();
  });
  store.on("generation", () => void fetch());
  store.on("theme", paint);
  // again whenever the box or the table changes size (laid out late, wider words after a click): the selected
  // column's width is only known then
  const follow = () => keepInView(scroll, table.querySelector<HTMLElement>(`th[data-rw-token="${store.selection.token}"]`));
  store.on("dispose", onResize(scroll, follow));
  store.on("dispose", onResize(table, follow));
  void fetch();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountLens;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-lens-view { order: 3; }
/* at most ~16 layers high: a 30-layer lens scrolls (its token row stays on top) instead of pushing the predictions
   below the screen */
.rw-lens-scroll { overflow: auto; max-width: 100%; max-height: 340px; scroll-snap-type: x proximity; }
.rw-lens th.rw-lens-token { position: sticky; top: 0; z-index: 1; }
.rw-lens td, .rw-lens th.rw-lens-token { scroll-snap-align: start; }
.rw-lens tr > :last-child { scroll-snap-align: end; } /* the last column snaps whole into view, however wide */
.rw-lens { border-collapse: separate; border-spacing: 0; font-family: var(--rw-mono); font-size: 11px; }
.rw-lens td, .rw-lens th { padding: 1px 4px; white-space: pre; cursor: pointer; max-width: 78px; overflow: hidden; text-overflow: ellipsis; }
.rw-lens th { font-weight: 600; color: var(--rw-fg); background: var(--rw-bg); }
.rw-lens th.rw-lens-layer { position: sticky; left: 0; z-index: 1; text-align: right; }
.rw-lens tr:first-child th.rw-lens-layer { top: 0; z-index: 2; }
.rw-lens th.rw-selected, .rw-lens td.rw-selected { outline: 2px solid var(--rw-select); outline-offset: -2px; }
.rw-lens td.rw-changed { box-shadow: inset 0 -3px 0 var(--rw-ablated); }
.rw-toggle { display: inline-flex; border: 1px solid var(--rw-button-border); border-radius: 4px; overflow: hidden; }
.rw-root .rw-toggle button { border: none; border-radius: 0; font-size: 11px; padding: 1px 6px; }
.rw-root .rw-toggle button[aria-pressed="true"] { background: var(--rw-fg); color: var(--rw-bg); }
`;
