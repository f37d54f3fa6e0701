// Graph: the prompt's attribution graph (pruned), nodes by layer (up) and position (across): token embeddings at the
// bottom, features (circles) and error nodes (squares) by layer, the logit nodes on top; the strongest edges, blue
// adding and red removing, as wide as their weight. A click selects a node (its layer, position, activation, output
// tokens and top contexts; the shared token and layer follow); a click on a logit node picks the logit the effects
// are read on; shift+click on a feature subtracts its write in the real model (an intervention), and the caption
// shows the graph's predicted effect beside the measured one; ctrl/cmd+click groups features (_graph_nodes.ts).
import type { Tensor } from "../codec";
import { css, diverging } from "../colour";
import { h, panel, showToken, signed, track, wantsIntervention } from "../dom";
import type { Reply, Store } from "../store";
import { groupOf, linkedSelection, mountNodePanel, toggled } from "./_graph_nodes";

const KINDS = ["feature", "error", "token", "logit"] as const;
const SVG = "http://www.w3.org/2000/svg";

export interface GraphNode {
  index: number;
  kind: (typeof KINDS)[number];
  layer: number;
  position: number;
  feature: number;
  x: number;
  y: number;
}

/** Where each node goes: rows by layer (tokens at the bottom, logits on top), columns by position (each wide enough for
 * its most crowded cell, `spacing` per node), the nodes sharing a cell side by side; logit nodes spread across the top
 * row. Returns the nodes placed and the picture's width. */
export function layout(nodes: Tensor, nPos: number, nLayers: number, rowHeight: number, spacing = 16): { placed: GraphNode[]; width: number } {
  const out: GraphNode[] = [];
  const n = nodes.shape[0];
  for (let i = 0; i < n; i++) {
    const v = (j: number) => nodes.data[i * 5 + j] as number;
    out.push({ index: v(0), kind: KINDS[v(1)], layer: v(2), position: v(3), feature: v(4), x: 0, y: 0 });
  }
  const cells = new Map<string, GraphNode[]>();
  for (const node of out) {
    const key = node.kind === "logit" ? "logit" : `${node.layer}.${node.position}`;
    cells.set(key, [...(cells.get(key) ?? []), node]);
  }
  // each position's column is as wide as its most crowded cell needs
  const crowd = new Array<number>(Math.max(1, nPos)).fill(2);
  for (const [key, group] of cells) if (key !== "logit") crowd[group[0].position] = Math.max(crowd[group[0].position], group.length);
  const left: number[] = [];
  let total = 0;
  for (const c of crowd) {
    left.push(total);
    total += (c + 1) * spacing;
  }
  const width = Math.max(total, (cells.get("logit")?.length ?? 0) * 56);
  const scale = width / total;
  for (const [key, group] of cells) {
    group.forEach((node, k) => {
      const row = node.layer + 1; // tokens -1 -> 0, logits n_layers -> n_layers + 1
      node.y = (nLayers + 1 - row) * rowHeight + rowHeight / 2;
      const column = (crowd[node.position] + 1) * spacing * scale;
      node.x = key === "logit" ? ((k + 0.5) / group.length) * width : left[node.position] * scale + ((k + 1) / (group.length + 1)) * column;
    });
  }
  return { placed: out, width };
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export function mountGraph(el: HTMLElement, store: Store): void {
  const parts = panel("Attribution graph", "rw-graph-view", store);
  el.appendChild(parts.root);
  const caption = h("div", { class: "rw-caption", data: { rwGraphCaption: "" }, text: "click a node to see it, a logit to pick it; shift+click a feature to remove it from the real model" });
  const picture = svg("svg", { class: "rw-graph", role: "group", "aria-label": "attribution graph" });
  parts.body.append(h("div", { class: "rw-graph-scroll" }, []), caption);
  parts.body.firstElementChild!.appendChild(picture);
  const side = mountNodePanel(parts.body, store, parts);
  let reply: Reply | null = null;
  let placedAt = new Map<number, GraphNode>();
  let logitOrder: number[] = []; // the logit nodes' indices, in the order of logit_tokens

  const paint = (r: Reply) => {
    reply = r;
    const d = r.data;
    const tokens = d.tokens as string[];
    const logits = d.logit_tokens as string[];
    const nLayers = d.n_layers as number;
    const rowHeight = 44;
    const { placed: nodes, width } = layout(d.nodes as Tensor, tokens.length, nLayers, rowHeight);
    const height = (nLayers + 2) * rowHeight + 16;
    picture.setAttribute("viewBox", `0 0 ${width} ${height}`);
    picture.setAttribute("width", String(width));
    picture.setAttribute("height", String(height));
    const at = new Map(nodes.map((n) => [n.index, n]));
    placedAt = at;
    logitOrder = nodes.filter((n) => n.kind === "logit").map((n) => n.index);
    const source = d.edge_source as Tensor;
    const target = d.edge_target as Tensor;
    const weight = d.edge_weight as Tensor;
    let limit = 1e-9;
    for (const w of weight.data) limit = Math.max(limit, Math.abs(w as number));
    const edges = svg("g", { class: "rw-graph-edges" });
    for (let i = 0; i < weight.data.length; i++) {
      const a = at.get(source.data[i] as number);
      const b = at.get(target.data[i] as number);
      if (!a || !b) continue;
      const w = (weight.data[i] as number) / limit;
      edges.appendChild(svg("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, stroke: css(diverging(w > 0 ? 1 : -1)), "stroke-width": 0.5 + 3.5 * Math.abs(w), "stroke-opacity": 0.25 + 0.6 * Math.abs(w) }));
    }
    const group = svg("g", { class: "rw-graph-nodes" });
    const selected = store.selection.graph_node as number | null | undefined;
    const grouped = new Set(groupOf(store));
    const picked = (store.selection.graph_logit as number | undefined) ?? 0;
    let logit = 0; // every logit node is kept, in the order of logit_tokens
    for (const node of nodes) {
      const word = node.kind === "logit" ? showToken(logits[logit++] ?? "") : showToken(tokens[node.position] ?? "");
      const g = svg("g", { class: `rw-graph-node rw-graph-${node.kind}`, "data-rw-graph-node": `${node.kind}.${node.layer}.${node.position}.${node.index}`, tabindex: 0 });
      const title = node.kind === "feature" ? `feature ${node.feature} of layer ${node.layer} at position ${node.position}` : node.kind === "error" ? `error node of layer ${node.layer} at position ${node.position}` : node.kind === "token" ? `token "${word}" (position ${node.position})` : `logit "${word}"`;
      const t = svg("title", {});
      t.textContent = title;
      g.appendChild(t);
      g.appendChild(node.kind === "error" ? svg("rect", { x: node.x - 5, y: node.y - 5, width: 10, height: 10 }) : svg("circle", { cx: node.x, cy: node.y, r: node.kind === "feature" ? 6 : 8 }));
      if (node.kind === "token" || node.kind === "logit") {
        const label = svg("text", { x: node.x, y: node.kind === "token" ? node.y + 20 : node.y - 12, "text-anchor": "middle" });
        label.textContent = word;
        g.appendChild(label);
      }
      g.classList.toggle("rw-selected", node.index === selected);
      g.classList.toggle("rw-graph-grouped", grouped.has(node.index));
      if (node.kind === "logit") {
        g.setAttribute("data-rw-graph-logit", String(logit - 1));
        g.classList.toggle("rw-graph-picked", logit - 1 === picked);
      }
      group.appendChild(g);
    }
    picture.replaceChildren(edges, group);
  };

  const describe = (r: Reply) => {
    const d = r.data;
    let text = d.kind === "feature" ? `feature ${d.feature} of layer ${d.layer} at position ${d.position}: activation ${Number(d.activation).toFixed(2)}` : `${d.kind} node, layer ${d.layer}, position ${d.position}`;
    text += `; influence ${Number(d.influence).toFixed(3)}`;
    const effects = d.top_effects ? ((d.top_effects as Tensor).data as Float32Array) : null;
    if (d.top_tokens) text += `; raises ${(d.top_tokens as string[]).map((t, i) => `"${showToken(t)}"${effects ? ` ${signed(effects[i], 3)}` : ""}`).join(", ")}`;
    if (d.predicted !== undefined) {
      text += `. On logit("${showToken(d.target_token as string)}"): predicted by the graph ${signed(d.predicted as number, 3)} direct, ${signed(d.predicted_total as number, 3)} through every path`;
      text += d.ablated ? `, measured ${signed(d.measured as number, 3)}${d.alone ? "" : " (with the other interventions)"}` : " (shift+click to measure)";
    }
    caption.textContent = text;
    caption.dataset.rwGraphMeasured = d.ablated ? String(d.measured) : "";
  };

  const fetch = () => {
    const failed = (error: unknown) => {
      caption.textContent = `the graph could not be shown: ${error instanceof Error ? error.message : String(error)}`;
    };
    const node = store.selection.graph_node as number | null | undefined;
    const selectedFeature = () => (node != null && placedAt.get(node)?.kind === "feature" ? node : null);
    track(parts, store.request("graph")).then((r) => r && (paint(r), side.update(selectedFeature())), failed);
    const logit = (store.selection.graph_logit as number | undefined) ?? 0;
    if (node != null) store.request("graph_node", { node, logit }).then((r) => r && describe(r), () => undefined);
  };
  const nodeOf = (event: Event) => {
    const g = (event.target as Element).closest("[data-rw-graph-node]");
    return g ? placedAt.get(Number(g.getAttribute("data-rw-graph-node")!.split(".")[3])) : undefined;
  };
  picture.addEventListener("click", (event) => {
    const node = nodeOf(event);
    if (!node || !reply) return;
    const tokens = (reply.data.tokens as string[]).length;
    if (node.kind === "logit") store.select({ graph_logit: logitOrder.indexOf(node.index) });
    else if (node.kind === "feature" && (event.ctrlKey || event.metaKey)) store.select({ graph_group: toggled(groupOf(store), node.index) });
    else if (node.kind === "feature" && store.editable && wantsIntervention(event)) store.command({ type: "graph_ablate", node: node.index }, parts.root);
    else store.select(linkedSelection(node, reply.data.offset as number, tokens - (reply.data.offset as number)));
  });
  // hover: a feature's contexts after a short pause, the selected node's again on leaving
  let pause: ReturnType<typeof setTimeout> | undefined;
  picture.addEventListener("mouseover", (event) => {
    const node = nodeOf(event);
    clearTimeout(pause);
    if (node?.kind === "feature") pause = setTimeout(() => side.showContexts(node.index, true), 200);
  });
  picture.addEventListener("mouseleave", () => {
    clearTimeout(pause);
    const node = store.selection.graph_node as number | null | undefined;
    side.showContexts(node != null && placedAt.get(node)?.kind === "feature" ? node : null, false);
  });
  store.watch(["graph_node", "graph_logit", "graph_group", "graph_groups"], () => reply && (paint(reply), fetch()));
  store.on("generation", () => (side.reset(), fetch()));
  fetch();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountGraph;

export const styles = `
.rw-graph-scroll { overflow-x: auto; max-width: 100%; }
.rw-graph-node { cursor: pointer; }
.rw-graph-node circle, .rw-graph-node rect { fill: var(--rw-bg); stroke: var(--rw-fg); stroke-width: 1.5; }
.rw-graph-feature circle { fill: #f5c542; }
.rw-graph-error rect { fill: #aaa; }
.rw-graph-node text { font: 11px var(--rw-mono); fill: var(--rw-fg); }
.rw-graph-node.rw-selected circle, .rw-graph-node.rw-selected rect { stroke: var(--rw-select); stroke-width: 3; }
.rw-graph-node.rw-graph-grouped circle { fill: #e07b39; }
.rw-graph-logit.rw-graph-picked circle { stroke: var(--rw-select); stroke-width: 3; }
.rw-graph-group { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin: 4px 0; font-size: 12px; }
.rw-graph-chip { font-size: 11px; }
`;
