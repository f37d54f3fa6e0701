// Pictures from the kernel's uint8 tensors (views/panels/_image_maps.py: values over min..max as 0..255): the input
// image in grey or RGB, drawn one canvas pixel per image pixel and scaled up by CSS (pixelated).

/** Paint a row-major `[rows, cols, channels]` uint8 image (1 channel: grey; 3: RGB) into `canvas`. */
export function paintPicture(canvas: HTMLCanvasElement, values: ArrayLike<number>, rows: number, cols: number, channels: number): void {
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  if (!ctx) return; // no canvas support (unit tests): the data attributes still describe the view
  const image = ctx.createImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    for (let c = 0; c < 3; c++) image.data[i * 4 + c] = values[i * channels + (channels === 3 ? c : 0)];
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

/** Paint a row-major `[rows, cols]` map as `rgb` whose opacity follows the value (0: clear, the map's largest value:
 * 80% opaque), to lay over a picture of the same aspect (a feature map over the image; attention over patches). */
export function paintHeat(canvas: HTMLCanvasElement, values: ArrayLike<number>, rows: number, cols: number, rgb: [number, number, number]): void {
  let top = 0;
  for (let i = 0; i < rows * cols; i++) top = Math.max(top, values[i]);
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const image = ctx.createImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    for (let c = 0; c < 3; c++) image.data[i * 4 + c] = rgb[c];
    image.data[i * 4 + 3] = top > 0 ? Math.round((204 * Math.max(0, values[i])) / top) : 0;
  }
  ctx.putImageData(image, 0, 0);
}

/** Show `canvas` `side` CSS pixels on its longer side, keeping its aspect ratio. */
export function sizePicture(canvas: HTMLCanvasElement, side: number): void {
  const longer = Math.max(canvas.width, canvas.height, 1);
  canvas.style.width = `${Math.round((side * canvas.width) / longer)}px`;
  canvas.style.height = `${Math.round((side * canvas.height) / longer)}px`;
}

/** The shared style of pictures: square pixels, no smoothing. */
export const PICTURE_STYLES = `
.rw-picture { image-rendering: pixelated; border: 1px solid var(--rw-border, #ccc); display: block; }
.rw-over { position: relative; display: inline-block; line-height: 0; }
.rw-over canvas.rw-overlay { position: absolute; left: 0; top: 0; border-color: transparent; pointer-events: none; }
`;
