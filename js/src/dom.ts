// DOM helpers. Text is only ever set with textContent: token text is never parsed as HTML.

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; text?: string; title?: string; data?: Record<string, string | number> } = {},
  children: (Node | null | undefined)[] = [],
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  if (props.title !== undefined) el.title = props.title;
  for (const [key, value] of Object.entries(props.data ?? {})) el.dataset[key] = String(value);
  for (const child of children) if (child) el.appendChild(child);
  return el;
}

/** A token as it should be read: whitespace made visible, nothing interpreted. */
export function showToken(text: string): string {
  return text.replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/^ /, "\u00b7").replace(/ /g, "\u00a0") || "\u2205";
}

/** A section of the widget with a heading. */
export function panel(title: string, cls: string): { root: HTMLElement; body: HTMLElement } {
  const body = h("div", { class: "rw-body" });
  const root = h("section", { class: `rw-panel ${cls}` }, [h("h4", { text: title }), body]);
  return { root, body };
}

/** A strength slider (`input type=range`) with a label that follows its value. */
export function slider(
  range: { min: number; max: number; step: number; value: number },
  props: { title: string; data: Record<string, string | number> },
): { input: HTMLInputElement; label: HTMLSpanElement } {
  const input = h("input", { class: "rw-steer", ...props });
  input.type = "range";
  input.min = String(range.min);
  input.max = String(range.max);
  input.step = String(range.step);
  input.value = String(range.value);
  const label = h("span", { class: "rw-num", text: String(range.value) });
  input.addEventListener("input", () => (label.textContent = input.value));
  return { input, label };
}
