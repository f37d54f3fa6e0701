// Top contexts (an SAE feature's dashboard, a neuron's top examples): one line per context, each token set as
// text and coloured by the unit's value on it against that context's peak.
import { type Palette, css, ink, sequential } from "./colour";
import { h, showToken } from "./dom";

/** One `div.${cls}` per context: `tokens[c]` with `values` (flat, every context's in turn), `peaks[c]` the index
 * of the peak in context `c`; the peak token is marked (`rw-ctx-peak`). */
export function contextLines(tokens: string[][], values: Float32Array, peaks: number[], palette: Palette, cls = "rw-context"): HTMLElement[] {
  let offset = 0;
  return tokens.map((line, c) => {
    const peak = Math.max(1e-9, values[offset + peaks[c]]);
    const row = h("div", { class: cls });
    line.forEach((token, i) => {
      const value = values[offset + i];
      const span = h("span", { class: "rw-ctx-token", text: showToken(token), title: value.toFixed(3) });
      const rgb = sequential(Math.max(0, value) / peak, palette);
      span.style.background = css(rgb);
      span.style.color = ink(rgb);
      if (i === peaks[c]) span.classList.add("rw-ctx-peak");
      row.appendChild(span);
    });
    offset += line.length;
    return row;
  });
}

/** A unit's top contexts as a reply gives them (`tokens`, `values`, `peaks`, `texts`, `label`): a caption naming
 * the unit (or saying no examples hold it: `missing`) and one line per context, titled with its text's index. */
export function topContexts(data: Record<string, any>, palette: Palette, missing: string): HTMLElement[] {
  const lines = contextLines(data.tokens as string[][], data.values.data as Float32Array, data.peaks, palette, "rw-example");
  lines.forEach((line, c) => line.setAttribute("title", `text ${data.texts[c]}`));
  const caption = lines.length ? `${data.label}: top contexts` : missing;
  return [h("div", { class: "rw-caption", text: caption }), ...lines];
}
