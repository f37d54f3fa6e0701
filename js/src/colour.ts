// Colour scales shared by the views, for a light or a dark background, and text that reads on them.

export type RGB = [number, number, number];

/** A sequential scale from `lo` (0: the background) to `hi` (1), and `neg` for -1 on a diverging scale. */
export interface Palette {
  name: "light" | "dark";
  lo: RGB;
  hi: RGB;
  neg: RGB;
}

export const LIGHT: Palette = { name: "light", lo: [255, 255, 255], hi: [30, 85, 205], neg: [214, 48, 39] };
/** On a dark page: zero is the panel's own dark grey, so an empty heatmap does not glare. */
export const DARK: Palette = { name: "dark", lo: [33, 33, 33], hi: [110, 170, 255], neg: [255, 110, 90] };

function mix(a: RGB, b: RGB, t: number): RGB {
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t)) as RGB;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Number.isFinite(v) ? v : 0));
}

/** Background to `hi` for values in [0, 1] (attention, probabilities). */
export function sequential(v: number, palette: Palette = LIGHT): RGB {
  return mix(palette.lo, palette.hi, clamp(v, 0, 1));
}

/** `neg` (-1) through the background (0) to `hi` (+1). */
export function diverging(v: number, palette: Palette = LIGHT): RGB {
  const x = clamp(v, -1, 1);
  return x < 0 ? mix(palette.lo, palette.neg, -x) : mix(palette.lo, palette.hi, x);
}

export function css(rgb: RGB): string {
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}

/** An sRGB channel (0..255) in linear light (0..1). */
const toLinear = (v: number) => (v / 255 <= 0.03928 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);

/** WCAG relative luminance of an sRGB colour. */
export function luminance(rgb: RGB): number {
  const [r, g, b] = rgb.map(toLinear);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** A colour's luminance is kept in this band by `readable`: at least 3:1 against white and against a dark page
 * (#212121). */
const LUMINANCE: [number, number] = [0.18, 0.27];

const toSRGB = (c: number) => Math.round(255 * (c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055));

/** `rgb` with its luminance brought into the LUMINANCE band (darkened, or mixed with white, in linear light): its
 * hue kept, readable on a light page and a dark one (a pale yellow becomes an olive). */
export function readable(rgb: RGB): RGB {
  const y = luminance(rgb), [lo, hi] = LUMINANCE;
  if (y >= lo && y <= hi) return rgb;
  const linear = rgb.map(toLinear);
  const out = y > hi ? linear.map((c) => (c * hi) / y) : linear.map((c) => c + ((1 - c) * (lo - y)) / (1 - y));
  return out.map(toSRGB) as RGB;
}

/** WCAG contrast ratio of two colours (1 to 21). */
export function contrast(a: RGB, b: RGB): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** Black or white text, whichever contrasts more with `rgb`: never below 4.58:1 on any colour. */
export function ink(rgb: RGB): string {
  return contrast(rgb, [0, 0, 0]) >= contrast(rgb, [255, 255, 255]) ? "#000" : "#fff";
}

/** `rgb(...)` / `rgba(...)` / `#rrggbb` as RGB over white (alpha composited), or null. */
export function parseColour(text: string): RGB | null {
  const hex = text.trim().match(/^#([0-9a-f]{6})$/i);
  if (hex) return [0, 2, 4].map((i) => parseInt(hex[1].slice(i, i + 2), 16)) as RGB;
  const m = text.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
  const a = p.length > 3 ? p[3] : 1;
  return [0, 1, 2].map((i) => Math.round(p[i] * a + 255 * (1 - a))) as RGB;
}

/** The palette for a background colour: dark on a dark background, else light. */
export function paletteFor(background: RGB | null): Palette {
  if (!background || luminance(background) > 0.3) return LIGHT;
  return { ...DARK, lo: background };
}

/** The largest value (at least `floor`), to scale a colour map to what a matrix holds. */
export function maxOf(values: ArrayLike<number>, floor = 1e-9): number {
  let max = floor;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return max;
}

/** Paint a row-major [rows, cols] matrix into a canvas, one pixel per value, `scale` drawn strongest. */
export function paintMatrix(
  canvas: HTMLCanvasElement,
  values: ArrayLike<number>,
  rows: number,
  cols: number,
  scale = 1,
  palette: Palette = LIGHT,
): void {
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  if (!ctx) return; // no canvas support (unit tests): the data attributes still describe the view
  const image = ctx.createImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    const [r, g, b] = sequential(values[i] / scale, palette);
    image.data[i * 4] = r;
    image.data[i * 4 + 1] = g;
    image.data[i * 4 + 2] = b;
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}
