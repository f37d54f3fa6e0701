// Saliency over the image (a CNN or a ViT): the gradient or integrated gradients of a class's logit to each input
// pixel, summed over channels, as a signed heat map over the image (the palette's colour raises the logit, its
// negative colour lowers it). Integrated gradients' completeness error is in the caption.
import { h, panel, track } from "../dom";
import { overlay, overlayStyles } from "../overlay";
import type { Data, Store } from "../store";

const NAMES: Record<string, string> = { gradient: "gradient", integrated_gradients: "integrated gradients" };

/** The caption of a saliency answer: the method, the class, and for integrated gradients its completeness. */
export function saliencyCaption(d: Data): string {
  const what = `${NAMES[d.method as string] ?? d.method} of class ${d.target_name}'s logit`;
  if (d.completeness_error == null) return `${what} (largest |gradient| ${Number(d.scale).toPrecision(2)})`;
  const error = 100 * (d.completeness_error as number);
  const shown = error < 0.01 ? "<0.01" : error.toFixed(2);
  return `${what}, ${d.steps} steps: completeness error ${shown}% (the attributions sum to the logit's change from the zero baseline, ${signed(d.delta as number)})`;
}

function signed(v: number): string {
  return `${v >= 0 ? "+" : ""}${v.toFixed(2)}`;
}

const SIDE = 168;

export function mountSaliency(el: HTMLElement, store: Store): void {
  const methods = store.shape.saliency_methods as string[];
  const classes = store.shape.class_names as string[];
  const parts = panel("Saliency", "rw-saliency-view", store);
  const { root, body } = parts;
  el.appendChild(root);
  const methodButtons = methods.map((m, i) =>
    h("button", { class: "rw-small", text: NAMES[m] ?? m, data: { rwSaliencyMethod: i }, attrs: { "aria-pressed": "false" } }),
  );
  const select = h("select", { data: { rwSaliencyClass: "" }, attrs: { "aria-label": "class" } });
  classes.forEach((name, i) => select.appendChild(h("option", { text: name, attrs: { value: String(i) } })));
  const picture = overlay(document, SIDE, true);
  picture.box.dataset.rwSaliencyImage = "";
  const caption = h("div", { class: "rw-caption", data: { rwSaliencyCaption: "" } });
  const toggle = h("span", { class: "rw-toggle", attrs: { role: "group", "aria-label": "saliency method" } }, methodButtons); // the pressed one shows
  body.append(h("div", { class: "rw-row" }, [toggle, h("span", { class: "rw-axis", text: " class " }), select]), picture.box, caption);

  const fetch = async () => {
    const sel = store.selection;
    methodButtons.forEach((b, i) => b.setAttribute("aria-pressed", String(i === sel.saliency_method)));
    select.value = String(sel.saliency_class);
    const reply = await track(parts, store.request("saliency", { target: sel.saliency_class, method: sel.saliency_method })).catch(() => null);
    if (!reply) return;
    const d = reply.data;
    const [rows, cols] = d.map.shape as number[];
    picture.paintHeat(d.map.data, rows, cols, { signed: true, scale: 1, palette: store.palette });
    caption.textContent = saliencyCaption(d);
    root.dataset.rwShown = `${d.method}.${d.target}`;
  };
  store.request("image", {}, "saliency-image").then((reply) => {
    if (!reply) return;
    const [height, width, channels] = reply.data.pixels.shape as number[];
    picture.paintImage(reply.data.pixels.data, height, width, channels);
  }, () => undefined);
  methodButtons.forEach((b, i) => b.addEventListener("click", () => store.select({ saliency_method: i })));
  select.addEventListener("change", () => store.select({ saliency_class: Number(select.value) }));
  store.watch(["saliency_class", "saliency_method"], () => void fetch());
  store.on("generation", () => void fetch());
  void fetch();
}

export const mount = mountSaliency;

export const styles = `${overlayStyles}
.rw-saliency-view select { font-size: 12px; }
`;
