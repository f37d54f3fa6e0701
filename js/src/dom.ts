// DOM helpers. Text is only ever set with textContent: token text is never parsed as HTML.
import { css, diverging, type Palette, sequential } from "./colour";

type Props = {
  class?: string;
  text?: string;
  title?: string;
  data?: Record<string, string | number>;
  /** attributes such as aria-label, role, tabindex */
  attrs?: Record<string, string | number>;
};

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  children: (Node | null | undefined)[] = [],
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  if (props.title !== undefined) el.title = props.title;
  for (const [key, value] of Object.entries(props.data ?? {})) el.dataset[key] = String(value);
  for (const [key, value] of Object.entries(props.attrs ?? {})) el.setAttribute(key, String(value));
  for (const child of children) if (child) el.appendChild(child);
  return el;
}

/** A token as it should be read: whitespace made visible, nothing interpreted. */
export function showToken(text: string): string {
  return text.replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/^ /, "\u00b7").replace(/ /g, "\u00a0") || "\u2205";
}

export interface PanelParts {
  root: HTMLElement;
  body: HTMLElement;
  /** beside the heading: "running…" where a click is being applied, "updating…" while the panel's data is stale */
  status: HTMLElement;
  /** paint the status again (after the store's busy state or the panel's loading changed) */
  refresh: () => void;
}

/** What a panel needs to know to say it is busy: whether a change is running and which panel started it. */
interface BusySource {
  readonly busy: boolean;
  readonly pendingPanel: HTMLElement | null;
  on(event: string, cb: () => void): void;
}

/** A section of the widget with a heading and a status beside it. With `store`, the panel shows run data: it
 * looks stale (and says "updating…") while a change runs or its own requests are out (see `track`). */
export function panel(title: string, cls: string, store?: BusySource, runData = true): PanelParts {
  const body = h("div", { class: "rw-body" });
  const status = h("span", { class: "rw-status", data: { rwStatus: "" }, attrs: { "aria-live": "polite" } });
  const heading = h("h4", {}, [h("span", { text: title }), status]);
  const root = h("section", { class: `rw-panel ${cls}`, attrs: { "aria-label": title } }, [heading, body]);
  const refresh = () => {
    const pending = Boolean(store?.busy && store.pendingPanel === root);
    const loading = root.dataset.rwLoading !== undefined || Boolean(store?.busy && root.dataset.rwRun !== undefined);
    status.textContent = pending ? "running\u2026" : loading ? "updating\u2026" : "";
  };
  if (store) {
    if (runData) root.dataset.rwRun = "";
    store.on("busy", refresh);
  }
  return { root, body, status, refresh };
}

/** Mark the panel as loading (its data stale) until `pending` settles; returns `pending`. */
export function track<T>(parts: PanelParts, pending: Promise<T>): Promise<T> {
  const root = parts.root;
  const count = () => Number(root.dataset.rwLoading ?? 0);
  root.dataset.rwLoading = String(count() + 1);
  parts.refresh();
  const done = () => {
    const left = count() - 1;
    if (left > 0) root.dataset.rwLoading = String(left);
    else delete root.dataset.rwLoading;
    parts.refresh();
  };
  pending.then(done, done);
  return pending;
}

/** A labelled select: the label's text is the select's accessible name. */
export function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  return h("label", { class: "rw-field" }, [h("span", { text }), control]);
}

/** A strength slider (`input type=range`) with a label that follows its value, written by `format`. */
export function slider(
  range: { min: number; max: number; step: number; value: number },
  props: { title: string; data: Record<string, string | number>; label: string },
  format: (value: number) => string = String,
): { input: HTMLInputElement; label: HTMLSpanElement } {
  const input = h("input", { class: "rw-steer", title: props.title, data: props.data, attrs: { "aria-label": props.label } });
  input.type = "range";
  input.min = String(range.min);
  input.max = String(range.max);
  input.step = String(range.step);
  input.value = String(range.value);
  const label = h("span", { class: "rw-num", text: format(range.value) });
  const update = () => {
    label.textContent = format(Number(input.value));
    input.setAttribute("aria-valuetext", label.textContent);
  };
  input.addEventListener("input", update);
  update();
  return { input, label };
}

/** `v` with its sign ("+1.20", "\u22120.50"); a value that rounds to zero has none ("0.0", never "\u22120.0"). */
export function signed(v: number, digits: number, suffix = ""): string {
  const text = Math.abs(v).toFixed(digits);
  const sign = Number(text) === 0 ? "" : v > 0 ? "+" : "\u2212";
  return `${sign}${text}${suffix}`;
}

/** A colour bar: the scale from `min` to `max` (and the midpoint on a diverging one), with what it measures. */
export function colourBar(
  palette: Palette,
  scale: "sequential" | "diverging",
  min: string,
  max: string,
  what: string,
  mid?: string,
): HTMLElement {
  const stops = scale === "sequential" ? [0, 0.25, 0.5, 0.75, 1] : [-1, -0.5, 0, 0.5, 1];
  const colour = (v: number) => css(scale === "sequential" ? sequential(v, palette) : diverging(v, palette));
  const bar = h("span", { class: "rw-colourbar-bar", attrs: { "aria-hidden": "true" } });
  bar.style.background = `linear-gradient(to right, ${stops.map(colour).join(", ")})`;
  // the midpoint's label sits under the middle of the bar, where its colour is
  const scaleBar = mid === undefined ? bar : h("span", { class: "rw-colourbar-scale" }, [bar, h("span", { class: "rw-colourbar-mid", text: mid })]);
  const ends = [h("span", { class: "rw-colourbar-end", text: min }), scaleBar, h("span", { class: "rw-colourbar-end", text: max })];
  return h("span", { class: "rw-colourbar", data: { rwColourbar: what }, attrs: { role: "img", "aria-label": `colour scale: ${what}, ${min} to ${max}` } }, [
    h("span", { class: "rw-colourbar-what", text: what }),
    ...ends,
  ]);
}

/** Scroll `container` (only it, never the page) so that `target` inside it is in view, centred if it was not. */
export function keepInView(container: HTMLElement, target: HTMLElement | null): void {
  if (!target) return;
  const box = container.getBoundingClientRect();
  const item = target.getBoundingClientRect();
  if (!box.width && !box.height) return; // not laid out (hidden, or no layout engine)
  const sticky = Number(container.dataset.rwStickyLeft ?? 0); // a frozen first column covers this much
  // what is visible: the box less its borders and scroll bars (a 30-layer lens has a vertical one)
  const left = box.left + container.clientLeft;
  const top = box.top + container.clientTop;
  const width = container.clientWidth || box.width;
  const height = container.clientHeight || box.height;
  if (item.left < left + sticky || item.right > left + width) {
    container.scrollLeft += item.left - left - sticky - (width - sticky - item.width) / 2;
  }
  if (item.top < top || item.bottom > top + height) {
    container.scrollTop += item.top - top - (height - item.height) / 2;
  }
}

/** Call `fn` whenever `el` changes size (it became visible, or its panel was resized). Returns a stop function. */
export function onResize(el: HTMLElement, fn: () => void): () => void {
  if (typeof ResizeObserver === "undefined") return () => undefined;
  const observer = new ResizeObserver(() => fn());
  observer.observe(el);
  return () => observer.disconnect();
}

/** Arrow keys as steps: ArrowLeft/Right (and Up/Down when `vertical`) to [dx, dy]; Home/End to the ends. */
export function arrowStep(event: KeyboardEvent): { dx: number; dy: number; home?: boolean; end?: boolean } | null {
  switch (event.key) {
    case "ArrowLeft":
      return { dx: -1, dy: 0 };
    case "ArrowRight":
      return { dx: 1, dy: 0 };
    case "ArrowUp":
      return { dx: 0, dy: -1 };
    case "ArrowDown":
      return { dx: 0, dy: 1 };
    case "Home":
      return { dx: 0, dy: 0, home: true };
    case "End":
      return { dx: 0, dy: 0, end: true };
    default:
      return null;
  }
}

/** Whether a click or key press asks to intervene (shift held), not only to select. */
export function wantsIntervention(event: MouseEvent | KeyboardEvent): boolean {
  return event.shiftKey;
}
