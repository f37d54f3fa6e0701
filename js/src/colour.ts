// Colour scales shared by the views.

/** White to blue for values in [0, 1] (attention, probabilities). */
export function sequential(v: number): [number, number, number] {
  const x = Math.max(0, Math.min(1, Number.isFinite(v) ? v : 0));
  return [Math.round(255 - 225 * x), Math.round(255 - 170 * x), Math.round(255 - 50 * x)];
}

/** Red (negative) through white to blue (positive), for values in [-1, 1]. */
export function diverging(v: number): [number, number, number] {
  const x = Math.max(-1, Math.min(1, Number.isFinite(v) ? v : 0));
  if (x < 0) return [255, Math.round(255 + 170 * x), Math.round(255 + 190 * x)];
  return sequential(x);
}

export function css(rgb: [number, number, number]): string {
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}

/** Black or white text, whichever reads better on `rgb`. */
export function ink(rgb: [number, number, number]): string {
  return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 ? "#111" : "#fff";
}

/** The largest value (at least `floor`), to scale a colour map to what a matrix holds. */
export function maxOf(values: ArrayLike<number>, floor = 1e-9): number {
  let max = floor;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return max;
}

/** Paint a row-major [rows, cols] matrix into a canvas, one pixel per value, `scale` drawn darkest. */
export function paintMatrix(canvas: HTMLCanvasElement, values: ArrayLike<number>, rows: number, cols: number, scale = 1): void {
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  if (!ctx) return; // no canvas support (unit tests): the data attributes still describe the view
  const image = ctx.createImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    const [r, g, b] = sequential(values[i] / scale);
    image.data[i * 4] = r;
    image.data[i * 4 + 1] = g;
    image.data[i * 4 + 2] = b;
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}
