// Tensors from the kernel: {dtype, shape, buffer}, raw little-endian bytes (never JSON floats).

export type DType = "float32" | "float16" | "int32" | "uint8";

export interface TensorMessage {
  dtype: DType;
  shape: number[];
  buffer: DataView | ArrayBuffer | ArrayBufferView;
}

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

const ITEM: Record<DType, number> = { float32: 4, float16: 2, int32: 4, uint8: 1 };

/** IEEE 754 half to float. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Decode a tensor message. Respects the view's byteOffset (widget buffers are often views into a larger message). */
export function decode(msg: TensorMessage): Tensor {
  const { dtype, shape } = msg;
  if (!(dtype in ITEM)) throw new Error(`unknown dtype ${String(dtype)}`);
  const src = msg.buffer;
  const bytes =
    src instanceof ArrayBuffer
      ? new Uint8Array(src)
      : new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== count * ITEM[dtype]) {
    throw new Error(`buffer has ${bytes.byteLength} bytes; ${dtype} of shape [${shape}] needs ${count * ITEM[dtype]}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let data: Float32Array | Int32Array | Uint8Array;
  if (dtype === "uint8") {
    data = bytes.slice();
  } else if (dtype === "int32") {
    data = new Int32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getInt32(i * 4, true);
  } else if (dtype === "float32") {
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
  } else {
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = halfToFloat(view.getUint16(i * 2, true));
  }
  return { dtype, shape: [...shape], data };
}

/** Element at a multi-index (row-major). */
export function at(t: Tensor, ...index: number[]): number {
  let flat = 0;
  for (let d = 0; d < t.shape.length; d++) flat = flat * t.shape[d] + index[d];
  return t.data[flat];
}

/** The `k` cells of a [rows, cols] tensor (or of slice `lead` of a [n, rows, cols] one) with the largest absolute
 * values, as [row, col, value], largest first: the heads to look at first. */
export function topCells(values: Tensor, k: number, lead?: number): [number, number, number][] {
  const [rows, cols] = values.shape.slice(-2);
  const cells: [number, number, number][] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) cells.push([r, c, lead === undefined ? at(values, r, c) : at(values, lead, r, c)]);
  return cells.sort((a, b) => Math.abs(b[2]) - Math.abs(a[2])).slice(0, k);
}

/** A set of rows among `n` as it travels in the selection (the kernel's codec.encode_rows): a bitset (row r is bit
 * r % 8 of byte r >> 3) in base64, ceil(n / 8) bytes whatever the set holds. */
export interface PackedRows {
  n: number;
  bits: string;
}

/** Rows (each in 0..n-1) as a bitset. */
export function encodeRows(rows: Iterable<number>, n: number): PackedRows {
  const bytes = new Uint8Array((n + 7) >> 3);
  for (const r of rows) bytes[r >> 3] |= 1 << (r & 7);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { n, bits: btoa(binary) };
}

/** Which of `n` rows a bitset marks (1 or 0 per row); a bitset over another number of rows marks none. */
export function decodeRows(packed: PackedRows, n: number): Uint8Array {
  const out = new Uint8Array(n);
  if (packed.n !== n) return out;
  const binary = atob(packed.bits);
  for (let r = 0; r < n; r++) out[r] = (binary.charCodeAt(r >> 3) >> (r & 7)) & 1;
  return out;
}

/** How many rows a bitset marks. */
export function countRows(packed: PackedRows): number {
  const binary = atob(packed.bits);
  let count = 0;
  for (let i = 0; i < binary.length; i++) for (let c = binary.charCodeAt(i); c; c &= c - 1) count++;
  return count;
}
