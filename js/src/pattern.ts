// A head's attention pattern as the kernel sends it (pooled for long prompts): its pixels to tokens and back, a
// query's row, and which head score to show first.
import { at, type Tensor } from "./codec";

/** Which [q0, q1) x [k0, k1) window a pattern reply covers, and the pooled size of each pixel. */
export interface PatternView {
  values: Tensor;
  window: [number, number, number, number];
}

/** The query and key under pixel (row, col) of a pattern reply (pooled replies cover several tokens per pixel). */
export function cellAt(view: PatternView, row: number, col: number): { query: number; key: number } {
  const [q0, q1, k0, k1] = view.window;
  const [rows, cols] = view.values.shape;
  return {
    query: Math.min(q1 - 1, q0 + Math.floor((row * (q1 - q0)) / rows)),
    key: Math.min(k1 - 1, k0 + Math.floor((col * (k1 - k0)) / cols)),
  };
}

/** The pixel (row, col) of a pattern reply that shows (query, key), or null outside its window. */
export function pixelOf(view: PatternView, query: number, key: number): { row: number; col: number } | null {
  const [q0, q1, k0, k1] = view.window;
  if (query < q0 || query >= q1 || key < k0 || key >= k1) return null;
  const [rows, cols] = view.values.shape;
  return { row: Math.floor(((query - q0) * rows) / (q1 - q0)), col: Math.floor(((key - k0) * cols) / (k1 - k0)) };
}

/** The attention row of `query` over every key position, as far as the reply shows it (0 outside). */
export function attentionRow(view: PatternView, query: number, nTokens: number): Float32Array | null {
  const [q0, q1, k0, k1] = view.window;
  if (query < q0 || query >= q1) return null;
  const [rows, cols] = view.values.shape;
  const row = Math.min(rows - 1, Math.floor(((query - q0) * rows) / (q1 - q0)));
  const out = new Float32Array(nTokens);
  for (let k = k0; k < k1; k++) out[k] = at(view.values, row, Math.min(cols - 1, Math.floor(((k - k0) * cols) / (k1 - k0))));
  return out;
}

/** The score to show first: the one whose values differ most between heads (so it says something on this prompt:
 * induction on a repeated sequence, not 0.00 everywhere on an ordinary one); "first token" only if nothing else
 * varies, since most heads of most models park attention on the first token. */
export function defaultScore(scores: Tensor, names: string[]): string {
  const per = scores.data.length / Math.max(1, names.length);
  let best = names[0];
  let spread = -1;
  names.forEach((name, i) => {
    const values = Array.from(scores.data.subarray(i * per, (i + 1) * per) as Float32Array);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    const weight = name === "first_token" ? 0.25 : 1;
    if (sd * weight > spread) {
      spread = sd * weight;
      best = name;
    }
  });
  return best;
}
