import { describe, expect, it } from "vitest";
import { at, decode, halfToFloat } from "../src/codec";

describe("decode", () => {
  it("reads float32 from a view with a byteOffset", () => {
    const values = new Float32Array([1.5, -2, 3.25, 4, 5, 6]);
    const big = new Uint8Array(8 + values.byteLength);
    big.set(new Uint8Array(values.buffer), 8); // the tensor starts 8 bytes into the buffer
    const view = new DataView(big.buffer, 8, values.byteLength);
    const t = decode({ dtype: "float32", shape: [2, 3], buffer: view });
    expect(Array.from(t.data)).toEqual([1.5, -2, 3.25, 4, 5, 6]);
    expect(at(t, 1, 2)).toBe(6);
  });

  it("reads float16", () => {
    // 1.0, -2.0, 0.5, 65504 (max half), 2^-24 (smallest subnormal)
    const halves = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001]);
    const t = decode({ dtype: "float16", shape: [5], buffer: halves });
    expect(Array.from(t.data)).toEqual([1, -2, 0.5, 65504, 2 ** -24]);
  });

  it("rejects a buffer of the wrong size", () => {
    expect(() => decode({ dtype: "float32", shape: [3], buffer: new Float32Array(2) })).toThrow(/needs 12/);
  });

  it("maps half infinities and NaN", () => {
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
  });
});
