// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { DARK, LIGHT } from "../src/colour";
import { cellOf, heatRGBA, magnitude, overlay } from "../src/overlay";

const alphaOf = (rgba: Uint8ClampedArray) => Array.from(rgba.filter((_, i) => i % 4 === 3));

describe("the heat grid over an image", () => {
  it("draws each cell's opacity in proportion to its value, the largest strongest, zero transparent", () => {
    const rgba = heatRGBA([0, 0.25, 0.5, 1], 2, 2, { alpha: 1 });
    expect(alphaOf(rgba)).toEqual([0, 64, 128, 255]);
    expect(Array.from(rgba.slice(12, 15))).toEqual(LIGHT.hi);
    // a given scale: values above it saturate, unsigned values below zero do not show
    expect(alphaOf(heatRGBA([-1, 0.1, 0.2, 0.4], 2, 2, { scale: 0.2, alpha: 0.5 }))).toEqual([0, 64, 128, 128]);
  });

  it("draws signed values (saliency) in the palette's two colours", () => {
    const rgba = heatRGBA([-2, 1, 0, 2], 1, 4, { signed: true, alpha: 1, palette: DARK });
    expect(Array.from(rgba.slice(0, 4))).toEqual([...DARK.neg, 255]);
    expect(Array.from(rgba.slice(4, 8))).toEqual([...DARK.hi, 128]);
    expect(alphaOf(rgba)).toEqual([255, 128, 0, 255]);
  });

  it("refuses a grid whose size does not match its values, and never divides by zero", () => {
    expect(() => heatRGBA([1, 2, 3], 2, 2)).toThrow("a 2x2 heat grid needs 4 values, got 3");
    expect(magnitude([0, 0])).toBe(1);
    expect(magnitude([0.5, -3, Number.NaN])).toBe(3);
    expect(alphaOf(heatRGBA([0, Number.NaN], 1, 2))).toEqual([0, 0]);
  });

  it("finds the cell under a point: a 4x4 patch grid on a 140-pixel image", () => {
    expect(cellOf(0, 0, 140, 140, 4, 4)).toEqual([0, 0]);
    expect(cellOf(139.9, 36, 140, 140, 4, 4)).toEqual([1, 3]);
    expect(cellOf(70, 105, 140, 140, 4, 4)).toEqual([3, 2]);
    expect(cellOf(140, 10, 140, 140, 4, 4)).toBeNull();
    expect(cellOf(-1, 10, 140, 140, 4, 4)).toBeNull();
  });

  it("stacks the image under the heat, each canvas at its own resolution", () => {
    const o = overlay(document, 140);
    o.paintImage(new Array(28 * 28).fill(0), 28, 28, 1);
    o.paintHeat(new Array(16).fill(0.1), 4, 4);
    expect([o.image.width, o.image.height, o.heat.width, o.heat.height]).toEqual([28, 28, 4, 4]);
    expect(o.box.dataset.rwGrid).toBe("4x4");
    expect(o.box.style.width).toBe("140px");
    expect(Array.from(o.box.children)).toEqual([o.image, o.heat]);
    o.mark([[2, 1], [0, 3]]);
    o.mark([[2, 1]]); // replaces the earlier outlines
    const marks = Array.from(o.box.querySelectorAll("[data-rw-marked]")) as HTMLElement[];
    expect(marks.map((m) => m.dataset.rwMarked)).toEqual(["2.1"]);
    expect([marks[0].style.left, marks[0].style.top, marks[0].style.width]).toEqual(["25%", "50%", "25%"]);
  });
});
