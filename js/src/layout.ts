// Where each view goes: the controls and the prompt across the top, the views you click in a main column, and
// what a click changes (the predictions, the logit lens) in a side column that stays in view (sticky) beside
// them. Below NARROW pixels of the widget's own width (not the window's) everything is one column, the effects
// right after the attention view.
import { paletteFor, parseColour } from "./colour";
import type { Store } from "./store";

/** The widget is one column below this width (its own width: a notebook's side panel counts). */
export const NARROW = 760;

/** Which column a view goes in: its panel's `place`, which the kernel sends in `shape.places` ("main" if none). */
export function placeOf(view: string, shape: { places?: Record<string, string> }): "top" | "main" | "side" {
  const place = shape.places?.[view];
  return place === "top" || place === "side" ? place : "main";
}

export interface Columns {
  root: HTMLElement;
  top: HTMLElement;
  main: HTMLElement;
  side: HTMLElement;
}

/** The widget's containers; empty ones are removed by `settle` once the views are in. */
export function columns(doc: Document): Columns {
  const make = (cls: string) => {
    const el = doc.createElement("div");
    el.className = cls;
    return el;
  };
  const root = make("rw-root");
  const top = make("rw-top");
  const main = make("rw-main");
  const side = make("rw-side");
  const cols = make("rw-cols");
  cols.append(main, side);
  root.append(top, cols);
  return { root, top, main, side };
}

/** Drop empty columns: a view shown alone (rw.LogitLensView) takes the whole width. */
export function settle(parts: Columns): void {
  for (const part of [parts.top, parts.main, parts.side]) if (!part.childElementCount) part.remove();
  const cols = parts.root.querySelector(".rw-cols") as HTMLElement;
  if (!cols.childElementCount) cols.remove();
  else cols.classList.toggle("rw-one", cols.childElementCount === 1);
}

/** "narrow" (one column) or "wide" for a widget `width` pixels wide. */
export function layoutFor(width: number): "narrow" | "wide" {
  return width > 0 && width < NARROW ? "narrow" : "wide";
}

/** Follow the widget's width: one column when narrow. Returns a function that stops following. */
export function followWidth(root: HTMLElement): () => void {
  const apply = (width: number) => {
    root.dataset.rwLayout = layoutFor(width);
  };
  apply(root.getBoundingClientRect().width);
  if (typeof ResizeObserver === "undefined") return () => undefined;
  const observer = new ResizeObserver((entries) => apply(entries[0].contentRect.width));
  observer.observe(root);
  return () => observer.disconnect();
}

/** Read the page's colours (JupyterLab's theme variables, else the light fallbacks) into the store's palette, and
 * again whenever JupyterLab switches its theme (the views repaint on the store's "theme" event). */
export function followTheme(root: HTMLElement, store: Store): () => void {
  const read = () => {
    const palette = paletteFor(parseColour(getComputedStyle(root).backgroundColor || ""));
    root.dataset.rwTheme = palette.name;
    const changed = JSON.stringify(palette) !== JSON.stringify(store.palette);
    store.palette = palette;
    if (changed) store.emit("theme");
  };
  read();
  const body = root.ownerDocument.body;
  if (typeof MutationObserver === "undefined" || !body) return () => undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const observer = new MutationObserver(() => {
    read();
    clearTimeout(timer);
    timer = setTimeout(read, 400); // a theme's stylesheet may apply a moment after the attribute changes
  });
  observer.observe(body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name", "class"] });
  return () => {
    clearTimeout(timer);
    observer.disconnect();
  };
}

/** The side of a head thumbnail so that `nHeads` columns fit `width` pixels and `nLayers` rows about `height`,
 * and whether the score fits under it: 36 px at most; below 26 px the score line goes (the head's aria-label and
 * title keep it) and thumbnails shrink to 12 px at least. */
export function thumbSize(width: number, nHeads: number, nLayers: number, height = 560): { side: number; scores: boolean } {
  const byWidth = (width - 34) / Math.max(1, nHeads) - 6; // the layer axis; each button's border and gap
  const rows = Math.max(1, nLayers);
  const withScores = Math.floor(Math.min(36, byWidth, height / rows - 18));
  if (withScores >= 26) return { side: withScores, scores: true };
  return { side: Math.max(12, Math.floor(Math.min(25, byWidth, height / rows - 6))), scores: false };
}
