// A heat grid laid translucently over an image: a ViT head's attention on the patch grid, a saliency map on the
// pixels. The image and the heat are two stacked canvases of the same on-screen size, each at its own resolution
// (the image at its pixels, drawn by picture.ts, the heat at its cells), so a 4x4 attention grid covers a 28x28
// digit cell for patch.
import { type Palette, type RGB, LIGHT } from "./colour";
import { paintPicture } from "./picture";

export interface OverlayOptions {
  /** the values' magnitude drawn strongest (default: their largest magnitude) */
  scale?: number;
  /** signed values (saliency): negative in the palette's `neg`, positive in `hi`; else only positive ones show */
  signed?: boolean;
  /** the opacity of a cell at full strength (0..1) */
  alpha?: number;
  palette?: Palette;
}

/** The largest magnitude in `values` (1 when they are all zero or empty, so nothing divides by 0). */
export function magnitude(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]);
    if (Number.isFinite(v) && v > max) max = v;
  }
  return max > 0 ? max : 1;
}

/** RGBA bytes of a row-major `[rows, cols]` heat grid: each cell in the palette's colour for its sign, its opacity
 * `alpha` x |value| / scale (a zero cell is transparent, so the image shows through). */
export function heatRGBA(values: ArrayLike<number>, rows: number, cols: number, options: OverlayOptions = {}): Uint8ClampedArray {
  if (values.length !== rows * cols) throw new Error(`a ${rows}x${cols} heat grid needs ${rows * cols} values, got ${values.length}`);
  const { signed = false, alpha = 0.7, palette = LIGHT } = options;
  const scale = options.scale ?? magnitude(values);
  const out = new Uint8ClampedArray(rows * cols * 4);
  for (let i = 0; i < rows * cols; i++) {
    const raw = Number.isFinite(values[i]) ? values[i] / scale : 0;
    const v = signed ? Math.max(-1, Math.min(1, raw)) : Math.max(0, Math.min(1, raw));
    const rgb: RGB = v < 0 ? palette.neg : palette.hi;
    out.set([rgb[0], rgb[1], rgb[2], Math.round(255 * alpha * Math.abs(v))], i * 4);
  }
  return out;
}

function put(canvas: HTMLCanvasElement, rgba: Uint8ClampedArray, rows: number, cols: number): void {
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  if (!ctx) return; // no canvas support (unit tests): the data attributes describe the view
  const image = ctx.createImageData(cols, rows);
  image.data.set(rgba);
  ctx.putImageData(image, 0, 0);
}

/** An image with a heat grid over it: `box` holds both canvases; `paint*` redraw one layer each. */
export interface Overlay {
  box: HTMLElement;
  image: HTMLCanvasElement;
  heat: HTMLCanvasElement;
  paintImage(pixels: ArrayLike<number>, height: number, width: number, channels: number): void;
  paintHeat(values: ArrayLike<number>, rows: number, cols: number, options?: OverlayOptions): void;
  /** the heat grid's cell under a pointer event, or null outside it */
  cellAt(event: MouseEvent): [number, number] | null;
  /** outline these cells of the heat grid (e.g. ablated patches), replacing the earlier outlines */
  mark(cells: [number, number][], title?: string): void;
}

/** The grid cell `[row, col]` of a point `(x, y)` inside a `width` x `height` box cut into `rows` x `cols`. */
export function cellOf(x: number, y: number, width: number, height: number, rows: number, cols: number): [number, number] | null {
  if (!(width > 0 && height > 0) || x < 0 || y < 0 || x >= width || y >= height) return null;
  return [Math.min(rows - 1, Math.floor((y / height) * rows)), Math.min(cols - 1, Math.floor((x / width) * cols))];
}

/** Two stacked canvases `size` CSS pixels a side: the image (smoothed) under the heat grid (`smooth` or blocky). */
export function overlay(doc: Document, size: number, smooth = false): Overlay {
  const box = doc.createElement("div");
  box.className = "rw-image-overlay";
  box.style.width = box.style.height = `${size}px`;
  const image = doc.createElement("canvas");
  image.className = "rw-image-overlay-image";
  const heat = doc.createElement("canvas");
  heat.className = smooth ? "rw-image-overlay-heat" : "rw-image-overlay-heat rw-pixelated";
  box.append(image, heat);
  let grid: [number, number] = [1, 1];
  return {
    box,
    image,
    heat,
    paintImage: (pixels, height, width, channels) => paintPicture(image, pixels, height, width, channels),
    paintHeat: (values, rows, cols, options) => {
      grid = [rows, cols];
      box.dataset.rwGrid = `${rows}x${cols}`;
      put(heat, heatRGBA(values, rows, cols, options), rows, cols);
    },
    mark: (cells, title = "") => {
      for (const old of Array.from(box.querySelectorAll(".rw-image-overlay-mark"))) old.remove();
      const [rows, cols] = grid;
      for (const [row, col] of cells) {
        const mark = doc.createElement("div");
        mark.className = "rw-image-overlay-mark";
        mark.dataset.rwMarked = `${row}.${col}`;
        if (title) mark.title = title;
        Object.assign(mark.style, { left: `${(100 * col) / cols}%`, top: `${(100 * row) / rows}%`, width: `${100 / cols}%`, height: `${100 / rows}%` });
        box.appendChild(mark);
      }
    },
    cellAt: (event) => {
      const rect = box.getBoundingClientRect();
      const width = rect.width || size, height = rect.height || size;
      return cellOf(event.clientX - rect.left, event.clientY - rect.top, width, height, grid[0], grid[1]);
    },
  };
}

/** The overlay's styles (each view that uses it appends them to its own). */
export const overlayStyles = `
.rw-image-overlay { position: relative; flex: none; }
.rw-image-overlay canvas { position: absolute; inset: 0; width: 100%; height: 100%; }
.rw-image-overlay .rw-pixelated, .rw-image-overlay-image { image-rendering: pixelated; }
.rw-image-overlay-mark { position: absolute; box-sizing: border-box; border: 2px dashed var(--rw-down, #d63027); pointer-events: none; }
`;
