// Building the interventions list a click asks for. Items the kernel listed are kept by reference (`{ref: key}`);
// a new one carries only the fields it needs. Labels come from the kernel.
import type { InterventionJSON } from "./types";

export type Target = { layer: number; head?: number; neuron?: number; channel?: number } | { sae: number; feature: number };

function same(iv: InterventionJSON, target: Target): boolean {
  if (iv.type !== "ablate") return false;
  if ("sae" in target) return iv.sae === target.sae && iv.feature === target.feature;
  return (
    iv.sae == null &&
    iv.layer === target.layer &&
    (iv.head ?? null) === (target.head ?? null) &&
    (iv.neuron ?? null) === (target.neuron ?? null) &&
    (iv.channel ?? null) === (target.channel ?? null)
  );
}

/** Whether `target` is ablated in `list`. */
export function isAblated(list: InterventionJSON[], target: Target): boolean {
  return list.some((iv) => same(iv, target));
}

/** Toggle one ablation (same layer and head/neuron/channel, or same SAE feature) in a list of interventions, in `mode`. */
export function toggleAblation(list: InterventionJSON[], target: Target, mode: string): InterventionJSON[] {
  if (isAblated(list, target)) return list.filter((iv) => !same(iv, target));
  if ("sae" in target) return [...list, { type: "ablate", sae: target.sae, feature: target.feature }];
  const item: InterventionJSON = { type: "ablate", layer: target.layer, mode };
  if (target.head !== undefined) item.head = target.head;
  if (target.neuron !== undefined) item.neuron = target.neuron;
  if (target.channel !== undefined) item.channel = target.channel;
  return [...list, item];
}

/** Steer with an SAE feature at `scale` (replacing an earlier steer with it; 0 removes it). */
export function setSteer(list: InterventionJSON[], sae: number, feature: number, scale: number): InterventionJSON[] {
  const rest = list.filter((iv) => !(iv.type === "steer" && iv.sae === sae && iv.feature === feature));
  if (scale === 0) return rest;
  return [...rest, { type: "steer", sae, feature, scale }];
}

/** What a set message carries for each item: a reference to one the kernel listed, or a new one's fields. */
export function wire(list: InterventionJSON[]): unknown[] {
  return list.map((iv) => (iv.key ? { ref: iv.key } : iv));
}

/** The label to show: the kernel's, or a placeholder while the kernel has not seen the item yet. */
export function labelOf(iv: InterventionJSON): string {
  return iv.label ?? "applying\u2026";
}
