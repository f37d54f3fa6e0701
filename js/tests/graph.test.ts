import { describe, expect, it } from "vitest";
import { linkedSelection, toggled } from "../src/views/_graph_nodes";
import { layout } from "../src/views/graph";

describe("graph layout", () => {
  it("puts tokens at the bottom, logits on top, layers upward and nodes sharing a cell apart", () => {
    // (index, kind, layer, position, feature): two features of layer 0 at position 1, an error, two tokens, a logit
    const rows = [
      [0, 0, 0, 1, 7],
      [1, 0, 0, 1, 9],
      [2, 0, 1, 0, 3],
      [5, 1, 1, 1, -1],
      [8, 2, -1, 0, 11],
      [9, 2, -1, 1, 12],
      [10, 3, 2, 1, 40],
    ];
    const nodes = { dtype: "int32" as const, shape: [rows.length, 5], data: Int32Array.from(rows.flat()) };
    const { placed, width } = layout(nodes, 2, 2, 40, 10);
    const by = new Map(placed.map((n) => [n.index, n]));
    expect(by.get(8)!.y).toBeGreaterThan(by.get(0)!.y); // tokens below layer 0
    expect(by.get(0)!.y).toBeGreaterThan(by.get(2)!.y); // layer 0 below layer 1
    expect(by.get(2)!.y).toBeGreaterThan(by.get(10)!.y); // the logit on top
    expect(by.get(0)!.y).toBe(by.get(1)!.y);
    expect(by.get(0)!.x).not.toBe(by.get(1)!.x); // side by side in their cell
    for (const i of [0, 1, 5, 9]) expect(by.get(i)!.x).toBeGreaterThan(width / 2); // position 1: the right column
    for (const i of [2, 8]) expect(by.get(i)!.x).toBeLessThan(width / 2);
    expect(by.get(5)!.kind).toBe("error");
  });
});

describe("graph nodes", () => {
  it("ctrl+click adds a feature to the group, a second one takes it out", () => {
    expect(toggled([], 4)).toEqual([4]);
    expect(toggled([4, 7], 9)).toEqual([4, 7, 9]);
    expect(toggled([4, 7, 9], 7)).toEqual([4, 9]);
  });
  it("a node selects its prompt position and, for features and errors, its layer", () => {
    expect(linkedSelection({ index: 3, kind: "feature", layer: 2, position: 4 }, 1, 5)).toEqual({ graph_node: 3, token: 3, layer: 2 });
    expect(linkedSelection({ index: 9, kind: "error", layer: 0, position: 1 }, 0, 5)).toEqual({ graph_node: 9, token: 1, layer: 0 });
    expect(linkedSelection({ index: 12, kind: "token", layer: -1, position: 2 }, 0, 5)).toEqual({ graph_node: 12, token: 2 });
    expect(linkedSelection({ index: 3, kind: "feature", layer: 1, position: 0 }, 1, 5)).toEqual({ graph_node: 3, layer: 1 }); // the BOS the graph added
    expect(linkedSelection({ index: 20, kind: "logit", layer: 4, position: 4 }, 0, 5)).toEqual({ graph_node: 20 });
  });
});
