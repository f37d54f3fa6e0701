// The widget's state as the kernel sends it (repwidget/views/widget.py traits, session.py traits()), and the
// part of an anywidget model the front end uses. A leaf module: every other module may import it.

import type { PackedRows } from "./codec";

export interface Selection {
  token: number;
  /** the layer the neurons, the logit lens and the probes show */
  layer: number;
  /** the attention head shown: `head_layer`.`head` (chosen apart from `layer`) */
  head_layer: number;
  head: number;
  neuron: number | null;
  /** which of the widget's SAEs, and which of its features */
  sae: number;
  feature: number | null;
  /** the projector's lasso: the prompt positions in it, and the texts' points: from the kernel a bitset over the
   * projector's rows (`[]` for none), [text, position] pairs in pages saved before (absent before the lasso) */
  tokens?: number[];
  points?: [number, number][] | PackedRows;
  /** a key another view's kernel panel adds (its `selection`), read by that view */
  [key: string]: unknown;
}

export interface ProbeInfo {
  kind: string;
  site: string;
  classes: string[];
  layers: number[];
}

export interface SAEInfo {
  name: string;
  hook: string;
  d_sae: number;
}

/** An ablation mode and whether it can run now (mean and resample need reference texts). */
export interface ModeInfo {
  name: string;
  available: boolean;
  /** why it cannot run now, and what would let it */
  reason?: string;
  hint?: string;
}

export interface Shape {
  n_layers: number;
  n_heads: number;
  d_mlp: number;
  n_tokens: number;
  max_side?: number;
  lens_width?: number;
  dashboards?: boolean;
  /** whether the neurons view can show a neuron's top contexts (the explorer was given examples or texts) */
  neuron_examples?: boolean;
  modes?: ModeInfo[];
  /** whether the tokens view can ask how each position's prediction changed (`effects`), and over how many */
  effects?: boolean;
  max_effects?: number;
  /** each view's column (its kernel panel's `place`) */
  places?: Record<string, string>;
  /** the request answered with every command: its name (`what`) and, per field, the selection key that fills it */
  then?: Record<string, string>;
  /** what another view's kernel panel adds (its `shape`), read by that view */
  [key: string]: unknown;
}

/**
 * An intervention as the kernel lists it: its JSON fields, the kernel's `label` and `key` (send `{ref: key}` to
 * keep it). A new one built here has only the fields it needs (the kernel fills in the defaults) and no key yet.
 */
export interface InterventionJSON {
  type: string;
  layer?: number | null;
  head?: number | null;
  neuron?: number | null;
  /** a CNN stage's channel (`layer` is the stage) */
  channel?: number | null;
  mode?: string;
  /** an index into the widget's SAEs */
  sae?: number | null;
  feature?: number | null;
  scale?: number;
  label?: string;
  key?: string;
  [field: string]: unknown;
}

/** The part of an anywidget model the store uses (a fake one in the unit tests, a static one in saved pages). */
export interface WidgetModel {
  get(name: string): any;
  set(name: string, value: unknown): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off?(event: string, cb?: (...args: any[]) => void): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[]): void;
}

export type Data = Record<string, any>;

export interface Reply {
  what: string;
  gen: number;
  data: Data;
}
