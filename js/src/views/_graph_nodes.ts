// The graph view's side panel (a helper of graph.ts, not a view): a feature node's top activating contexts (on
// select, and on hover after a short pause), the supernode bar (the group ctrl/cmd+click builds, "ablate group", names)
// and the group's caption: the graph's predicted joint effect on the picked logit beside the one measured.
import type { Tensor } from "../codec";
import { contextLines } from "../contexts";
import { h, showToken, signed, track } from "../dom";
import type { Reply, Store } from "../store";

/** `group` with `node` added, or removed when it is there already (ctrl/cmd+click). */
export function toggled(group: readonly number[], node: number): number[] {
  return group.includes(node) ? group.filter((n) => n !== node) : [...group, node];
}

/** The selection a click on a node makes: the node, its prompt position (`token`, the graph's position less the
 * tokens it put before the prompt) and, for features and error nodes, its `layer`. */
export function linkedSelection(node: { index: number; kind: string; layer: number; position: number }, offset: number, nTokens: number): Record<string, number> {
  const change: Record<string, number> = { graph_node: node.index };
  const token = node.position - offset;
  if (node.kind !== "logit" && token >= 0 && token < nTokens) change.token = token;
  if (node.kind === "feature" || node.kind === "error") change.layer = node.layer;
  return change;
}

export function groupOf(store: Store): number[] {
  return (store.selection.graph_group as number[] | undefined) ?? [];
}

/** The contexts area and the group bar under the graph; `update()` follows the selection. */
export function mountNodePanel(body: HTMLElement, store: Store, parts: Parameters<typeof track>[0]) {
  const contexts = h("div", { class: "rw-graph-contexts", data: { rwGraphContexts: "" } });
  const count = h("span", { class: "rw-graph-group-count", text: "" });
  const ablateGroup = h("button", { class: "rw-graph-ablate-group", data: { rwGraphAblateGroup: "" }, text: "ablate group" });
  const name = h("input", { class: "rw-graph-group-name", attrs: { placeholder: "name", size: 10, "aria-label": "group name" } });
  const save = h("button", { data: { rwGraphNameGroup: "" }, text: "name it" });
  const named = h("span", { class: "rw-graph-named" });
  const bar = h("div", { class: "rw-graph-group", data: { rwGraphGroup: "" } }, [count, ablateGroup, name, save, named]);
  const groupCaption = h("div", { class: "rw-caption", data: { rwGraphGroupCaption: "" } });
  body.append(bar, groupCaption, contexts);

  let shown = ""; // the node whose contexts are drawn ("" for none), and whether it is hovered
  const showContexts = (node: number | null, hovered: boolean) => {
    const now = node == null ? "" : `${node}${hovered ? "h" : ""}`;
    if (now === shown) return;
    shown = now;
    if (node == null) return contexts.replaceChildren();
    store.request("graph_examples", { node }).then((r: Reply | null) => {
      if (!r || shown !== now) return; // an answer for a node no longer shown
      const d = r.data;
      const tokens = d.tokens as string[][];
      const what = `feature ${d.feature} of layer ${d.layer}${hovered ? " (hovered)" : ""}`;
      const lines = contextLines(tokens, (d.values as Tensor).data as Float32Array, d.peaks as number[], store.palette, "rw-example");
      lines.forEach((line, c) => line.setAttribute("title", `text ${(d.texts as number[])[c]}`));
      const text = lines.length ? `${what}: top contexts over ${d.source}` : d.missing ? `${what}: pass ${d.missing} to rw.explore to see its top contexts` : `${what}: no contexts`;
      contexts.replaceChildren(h("div", { class: "rw-caption", text }), ...lines);
      contexts.dataset.rwGraphContexts = String(d.node);
    }, () => undefined);
  };

  const describeGroup = (r: Reply | null) => {
    if (!r) return;
    const d = r.data;
    let text = `group of ${(d.nodes as number[]).length} on logit("${showToken(d.target_token as string)}"): predicted by the graph ${signed(d.predicted as number, 3)} direct, ${signed(d.predicted_total as number, 3)} through every path`;
    text += d.replacement !== undefined ? ` (replacement model, ablated together with all else frozen: ${signed(d.replacement as number, 3)})` : "";
    text += d.ablated ? `, measured ${signed(d.measured as number, 3)}${d.alone ? "" : " (with the other interventions)"}` : " (ablate group to measure)";
    groupCaption.textContent = text;
    groupCaption.dataset.rwGraphGroupMeasured = d.ablated ? String(d.measured) : "";
  };

  const update = (selectedFeature: number | null) => {
    const group = groupOf(store);
    count.textContent = group.length ? `group: ${group.length} feature${group.length > 1 ? "s" : ""}` : "ctrl+click features to group them";
    ablateGroup.disabled = !group.length || !store.editable;
    save.disabled = !group.length;
    const groups = (store.selection.graph_groups as Record<string, number[]> | undefined) ?? {};
    named.replaceChildren(...Object.entries(groups).map(([n, nodes]) => h("button", { class: "rw-graph-chip", data: { rwGraphGroupName: n }, text: `${n} (${nodes.length})` })));
    if (group.length) track(parts, store.request("graph_group", { nodes: group, logit: store.selection.graph_logit ?? 0 })).then(describeGroup, () => undefined);
    else groupCaption.textContent = "";
    showContexts(selectedFeature, false);
  };

  ablateGroup.addEventListener("click", () => {
    const group = groupOf(store);
    if (group.length && store.editable) store.command({ type: "graph_ablate_group", nodes: group }, bar);
  });
  save.addEventListener("click", () => {
    const label = name.value.trim().slice(0, 40);
    const group = groupOf(store);
    if (!label || !group.length) return;
    const groups = (store.selection.graph_groups as Record<string, number[]> | undefined) ?? {};
    store.select({ graph_groups: { ...groups, [label]: group } });
    name.value = "";
  });
  named.addEventListener("click", (event) => {
    const chip = (event.target as Element).closest("[data-rw-graph-group-name]") as HTMLElement | null;
    const groups = (store.selection.graph_groups as Record<string, number[]> | undefined) ?? {};
    if (chip && groups[chip.dataset.rwGraphGroupName!]) store.select({ graph_group: groups[chip.dataset.rwGraphGroupName!] });
  });
  return { update, showContexts, reset: () => (shown = "") };
}
