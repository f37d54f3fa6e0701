// Points in a plane drawn on a canvas: the frame that fits them, the point under the pointer, and a lasso's points.
import { countRows, decodeRows, type Tensor } from "./codec";
import type { Selection } from "./types";

/** A pixel of the canvas: [x, y]. */
export type Pixel = [number, number];

/** Points in a plane, the first `n_prompt` the prompt's, the others texts' (`text`, `pos`: which and where). */
export interface Scattered {
  xy: Tensor;
  n_prompt: number;
  text?: Tensor;
  pos?: Tensor;
}

/** The affine map from data coordinates to canvas pixels that fits every point in `width` x `height`. */
export interface Frame {
  x0: number;
  y0: number;
  scale: number;
  width: number;
  height: number;
}

/** The frame of the points `xy` ([n, 2]) on a `width` x `height` canvas, `pad` pixels from its edges. */
export function frameOf(xy: Tensor, width: number, height: number, pad: number): Frame {
  let [minX, maxX, minY, maxY] = [Infinity, -Infinity, Infinity, -Infinity];
  const n = xy.shape[0];
  for (let i = 0; i < n; i++) {
    const x = xy.data[2 * i], y = xy.data[2 * i + 1];
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  if (!(n > 0)) [minX, maxX, minY, maxY] = [0, 1, 0, 1];
  const scale = Math.min((width - 2 * pad) / Math.max(maxX - minX, 1e-9), (height - 2 * pad) / Math.max(maxY - minY, 1e-9));
  // centred; y grows upwards on the page
  const x0 = width / 2 - ((minX + maxX) / 2) * scale;
  const y0 = height / 2 + ((minY + maxY) / 2) * scale;
  return { x0, y0, scale, width, height };
}

export function toPixel(f: Frame, x: number, y: number): [number, number] {
  return [f.x0 + x * f.scale, f.y0 - y * f.scale];
}

/** The point nearest pixel (px, py) within `radius` pixels, prompt points first (they are drawn on top), or -1. */
export function nearestPoint(xy: Tensor, f: Frame, nPrompt: number, px: number, py: number, radius = 8): number {
  const search = (from: number, to: number) => {
    let best = -1, bestD = radius * radius;
    for (let i = from; i < to; i++) {
      const [x, y] = toPixel(f, xy.data[2 * i], xy.data[2 * i + 1]);
      const d = (x - px) ** 2 + (y - py) ** 2;
      if (d <= bestD) [best, bestD] = [i, d];
    }
    return best;
  };
  const prompt = search(0, nPrompt);
  return prompt >= 0 ? prompt : search(nPrompt, xy.shape[0]);
}

/** Whether pixel (x, y) lies inside `polygon` (even-odd rule: a ray to the right crosses its edges an odd number
 * of times; the polygon closes itself). */
export function insidePolygon(polygon: Pixel[], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i], [xj, yj] = polygon[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** The points inside a lasso drawn in pixels: the prompt's positions (`tokens`), and the texts' points as their rows
 * among the texts' points (`rows`: what travels, as a bitset) and as [text, position] pairs (`points`). */
export function lassoed(
  reply: Scattered, f: Frame, polygon: Pixel[],
): { tokens: number[]; rows: number[]; points: [number, number][] } {
  const tokens: number[] = [], rows: number[] = [], points: [number, number][] = [];
  if (polygon.length < 3) return { tokens, rows, points };
  const xs = polygon.map((p) => p[0]), ys = polygon.map((p) => p[1]);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  for (let i = 0; i < reply.xy.shape[0]; i++) {
    const [x, y] = toPixel(f, reply.xy.data[2 * i], reply.xy.data[2 * i + 1]);
    if (x < minX || x > maxX || y < minY || y > maxY || !insidePolygon(polygon, x, y)) continue;
    const j = i - reply.n_prompt;
    if (j < 0) tokens.push(i);
    else {
      rows.push(j);
      if (reply.text && reply.pos) points.push([reply.text.data[j], reply.pos.data[j]]);
    }
  }
  return { tokens, rows, points };
}

/** The prompt's points' radius; the texts' points have it up to FEW_POINTS of them, less (down to 1.25 px) beyond. */
export const PROMPT_RADIUS = 4.5;
const FEW_POINTS = 50;

/** The radius of the texts' points when there are `count` of them: the prompt's for a few dozen, smaller for
 * thousands (1.25 px at least: 20,000 points stay a cloud, not a blot). */
export function pointRadius(count: number): number {
  return count <= FEW_POINTS ? PROMPT_RADIUS : Math.max(1.25, PROMPT_RADIUS * (FEW_POINTS / count) ** 0.35);
}

/** Which of the texts' `count` points (in the reply's order) the selection's lasso holds: its bitset, or the
 * [text, position] pairs of a page saved before the bitset. */
export function marksOf(sel: Selection, reply: Pick<Scattered, "text" | "pos">, count: number): Uint8Array {
  const points = sel.points;
  if (!points) return new Uint8Array(count);
  if (!Array.isArray(points)) return decodeRows(points, count);
  const out = new Uint8Array(count);
  if (!points.length || !reply.text || !reply.pos) return out;
  const chosen = new Set(points.map(([t, p]) => `${t},${p}`));
  for (let j = 0; j < count; j++) out[j] = Number(chosen.has(`${reply.text.data[j]},${reply.pos.data[j]}`));
  return out;
}

/** How many of the texts' points the selection's lasso holds. */
export function pointCount(sel: Selection): number {
  const points = sel.points;
  return !points ? 0 : Array.isArray(points) ? points.length : countRows(points);
}
