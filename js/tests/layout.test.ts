// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { contrast, DARK, diverging, ink, LIGHT, paletteFor, parseColour, type RGB, sequential } from "../src/colour";
import { colourBar, signed } from "../src/dom";
import { layoutFor, NARROW, placeOf, thumbSize } from "../src/layout";

describe("layout", () => {
  it("is one column when the widget itself is narrow", () => {
    expect(layoutFor(NARROW - 1)).toBe("narrow");
    expect(layoutFor(NARROW + 200)).toBe("wide");
    expect(layoutFor(0)).toBe("wide"); // not laid out yet: no reflow on a guess
  });

  it("puts each view in the column its kernel panel names (shape.places), else the main one", () => {
    const shape = { places: { interventions: "top", attention: "main", lens: "side", predictions: "side" } };
    expect(["interventions", "attention", "lens", "predictions", "unplaced"].map((v) => placeOf(v, shape))).toEqual([
      "top", "main", "side", "side", "main",
    ]);
    expect(placeOf("lens", {})).toBe("main");
  });

  it("sizes head thumbnails so a 12 x 12 or 30 x 9 model's grid fits a half-width panel", () => {
    expect(thumbSize(440, 4, 4)).toEqual({ side: 36, scores: true }); // the demo model: full size, scores shown
    const gpt2 = thumbSize(440, 12, 12);
    expect(gpt2.scores).toBe(true);
    expect(34 + 12 * (gpt2.side + 6)).toBeLessThanOrEqual(440);
    const smollm = thumbSize(440, 9, 30);
    expect(smollm.scores).toBe(false); // too small for a number: the aria-label and title keep it
    expect(30 * (smollm.side + 6)).toBeLessThanOrEqual(600);
    expect(thumbSize(200, 64, 4).side).toBe(12); // never below 12 px: the panel scrolls instead
  });
});

describe("colours", () => {
  const samples = (f: (v: number) => RGB, lo: number) => Array.from({ length: 41 }, (_, i) => f(lo + ((1 - lo) * i) / 40));

  it("text on any heatmap colour reads at 4.5:1 or more, in both themes", () => {
    for (const palette of [LIGHT, DARK]) {
      for (const rgb of [...samples((v) => sequential(v, palette), 0), ...samples((v) => diverging(v, palette), -1)]) {
        const text = ink(rgb) === "#000" ? ([0, 0, 0] as RGB) : ([255, 255, 255] as RGB);
        expect(contrast(rgb, text)).toBeGreaterThanOrEqual(4.5);
      }
    }
  });

  it("a dark background gets the dark palette, starting from that background", () => {
    expect(paletteFor(parseColour("rgb(255, 255, 255)"))).toBe(LIGHT);
    const dark = paletteFor(parseColour("rgb(33, 33, 33)"));
    expect(dark.name).toBe("dark");
    expect(sequential(0, dark)).toEqual([33, 33, 33]); // zero attention is the panel itself: no white glare
    expect(parseColour("rgba(0, 0, 0, 0.5)")).toEqual([128, 128, 128]);
    expect(paletteFor(null)).toBe(LIGHT);
  });
});

describe("numbers and scales", () => {
  it("signs a number, but never a zero: no \u22120.0", () => {
    expect(signed(0.5, 2)).toBe("+0.50");
    expect(signed(-3, 1, "pp")).toBe("\u22123.0pp");
    expect(signed(-0.0001, 1, "pp")).toBe("0.0pp");
    expect(signed(0, 2)).toBe("0.00");
  });

  it("puts a diverging bar's midpoint label under its middle, between the ends", () => {
    const bar = colourBar(LIGHT, "diverging", "\u22121", "+1", "change", "0");
    const texts = Array.from(bar.children, (c) => c.textContent);
    expect(texts).toEqual(["change", "\u22121", "0", "+1"]);
    expect(bar.querySelector(".rw-colourbar-scale > .rw-colourbar-bar + .rw-colourbar-mid")).not.toBeNull();
  });
});
