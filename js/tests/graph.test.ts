// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { mount } from "../src/widget";
import { answer, FakeModel, float32, header, int32, settle, traits } from "./fake";
import { click } from "./mounted";
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

describe("graph view, mounted", () => {
  // two features (layer 0 and 1, position 1), the two token nodes and two logit nodes; one edge
  const rows = [
    [0, 0, 0, 1, 7],
    [1, 0, 1, 1, 9],
    [6, 2, -1, 0, 11],
    [7, 2, -1, 1, 12],
    [8, 3, 2, 1, 40],
    [9, 3, 2, 1, 41],
  ];
  const graph = {
    nodes: header("int32", [rows.length, 5], 0),
    influence: header("float32", [rows.length], 1),
    activation: header("float32", [rows.length], 2),
    edge_source: header("int32", [1], 3),
    edge_target: header("int32", [1], 4),
    edge_weight: header("float32", [1], 5),
    tokens: ["t0", "t1"],
    logit_tokens: ["a", "b"],
    logit_probabilities: header("float32", [2], 6),
    n_layers: 2,
    offset: 0,
  };
  const buffers = () => [int32(rows.flat()), float32(rows.map(() => 0.1)), float32(rows.map(() => 1)), int32([0]), int32([8]), float32([0.5]), float32([0.6, 0.3])];
  const selection = { token: 1, layer: 1, head_layer: 0, head: 0, neuron: null, sae: 0, feature: null, graph_node: null, graph_logit: 0, graph_group: [], graph_groups: {} };

  it("click selects a node with its token and layer, ctrl+click groups, a logit node is picked, the group is ablated", async () => {
    const model = new FakeModel(traits(2, { views: ["tokens", "graph"], selection }));
    const el = document.createElement("div");
    document.body.appendChild(el);
    const store = mount(model, el);
    answer(model, "graph", graph, buffers());
    await settle();
    const node = (i: number) => el.querySelector(`[data-rw-graph-node$=".${i}"] circle`)!;
    click(node(0));
    expect(store.selection).toMatchObject({ graph_node: 0, token: 1, layer: 0 });
    answer(model, "graph", graph, buffers());
    await settle();
    expect(model.sent.find((m) => m.what === "graph_examples")).toMatchObject({ node: 0 });
    answer(model, "graph_examples", { node: 0, layer: 0, feature: 7, source: "texts=", tokens: [["x", "y"]], peaks: [1], values: header("float32", [2], 0), texts: [3] }, [float32([0.5, 2])]);
    await settle();
    expect(el.querySelectorAll("[data-rw-graph-contexts] .rw-example")).toHaveLength(1);
    click(node(0), { ctrlKey: true });
    click(node(1), { metaKey: true });
    expect(store.selection.graph_group).toEqual([0, 1]);
    click(node(9));
    expect(store.selection.graph_logit).toBe(1);
    answer(model, "graph", graph, buffers());
    await settle();
    expect([...model.sent].reverse().find((m) => m.what === "graph_group")).toMatchObject({ nodes: [0, 1], logit: 1 });
    click(el.querySelector("[data-rw-graph-ablate-group]")!);
    expect(model.sent.find((m) => m.type === "graph_ablate_group")).toMatchObject({ nodes: [0, 1] });
    expect(model.sent.some((m) => m.type === "graph_ablate")).toBe(false);
  });

  it("hovering a feature asks for its contexts after a pause, and leaving the graph shows the selected node's again", async () => {
    const model = new FakeModel(traits(2, { views: ["tokens", "graph"], selection: { ...selection, graph_node: 0 } }));
    const el = document.createElement("div");
    document.body.appendChild(el);
    mount(model, el);
    answer(model, "graph", graph, buffers());
    await settle();
    const asked = () => model.sent.filter((m) => m.what === "graph_examples").map((m) => m.node);
    expect(asked()).toEqual([0]); // the selected feature's
    el.querySelector('[data-rw-graph-node$=".1"] circle')!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(asked()).toEqual([0]); // not yet: a pause first
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(asked()).toEqual([0, 1]);
    el.querySelector("svg.rw-graph")!.dispatchEvent(new MouseEvent("mouseleave"));
    expect(asked()).toEqual([0, 1, 0]);
  });
});
