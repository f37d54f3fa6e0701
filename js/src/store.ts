// The shared state of one widget: the selection, the request/reply loop with the kernel, and the
// interventions queue (while the kernel runs, newer clicks replace older ones: the last click wins).
import { decode, type Tensor, type TensorMessage } from "./codec";
import { fromBase64, savedAnswer, type SavedReply } from "./static";

export interface Selection {
  token: number;
  layer: number;
  head: number;
  neuron: number | null;
  /** which of the widget's SAEs, and which of its features */
  sae: number;
  feature: number | null;
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

export interface Shape {
  n_layers: number;
  n_heads: number;
  d_mlp: number;
  n_tokens: number;
  max_side: number;
  dashboards?: boolean;
}

export interface InterventionJSON {
  type: string;
  layer: number;
  head?: number | null;
  neuron?: number | null;
  mode?: string;
  sae?: string | null;
  feature?: number | null;
  scale?: number;
  [key: string]: unknown;
}

/** The part of an anywidget model the store uses (a fake one in the unit tests). */
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

type Listener = (...args: any[]) => void;

/** Replace codec headers `{dtype, shape, buffer: i}` in a reply by decoded tensors. */
export function unpack(data: Data, buffers: ArrayLike<DataView | ArrayBuffer>): Data {
  const out: Data = {};
  for (const [key, value] of Object.entries(data ?? {})) {
    if (value && typeof value === "object" && typeof value.buffer === "number" && "dtype" in value) {
      const buffer = buffers[value.buffer];
      if (buffer === undefined) throw new Error(`reply field ${key} points at missing buffer ${value.buffer}`);
      out[key] = decode({ ...(value as TensorMessage), buffer });
    } else {
      out[key] = value;
    }
  }
  return out;
}

export type Target = { layer: number; head?: number; neuron?: number } | { sae: string; feature: number };

/** Toggle one ablation (same layer and head/neuron, or same SAE feature) in a list of interventions, in `mode`. */
export function toggleAblation(list: InterventionJSON[], target: Target, mode: string): InterventionJSON[] {
  if ("sae" in target) {
    const same = (iv: InterventionJSON) => iv.type === "ablate" && iv.sae === target.sae && iv.feature === target.feature;
    if (list.some(same)) return list.filter((iv) => !same(iv));
    return [...list, { type: "ablate", layer: null as unknown as number, sae: target.sae, feature: target.feature, mode: "zero", seed: 0 }];
  }
  const head = target.head ?? null;
  const neuron = target.neuron ?? null;
  const same = (iv: InterventionJSON) =>
    iv.type === "ablate" && iv.sae == null && iv.layer === target.layer && (iv.head ?? null) === head && (iv.neuron ?? null) === neuron;
  if (list.some(same)) return list.filter((iv) => !same(iv));
  return [...list, { type: "ablate", layer: target.layer, head, neuron, mode, seed: 0 }];
}

/** Steer with an SAE feature at `scale` (replacing an earlier steer with it; 0 removes it). */
export function setSteer(list: InterventionJSON[], sae: string, feature: number, scale: number): InterventionJSON[] {
  const rest = list.filter((iv) => !(iv.type === "steer" && iv.sae === sae && iv.feature === feature));
  if (scale === 0) return rest;
  return [...rest, { type: "steer", layer: null as unknown as number, vector: [], scale, sae, feature }];
}

/** A short label for an intervention, as text. */
export function describe(iv: InterventionJSON): string {
  if (iv.type === "ablate" && iv.sae != null) return `ablate feature ${iv.feature} of ${iv.sae}`;
  if (iv.type === "ablate" && iv.direction === null) return `project out a direction at layer ${iv.layer} (${iv.mode ?? "zero"})`;
  if (iv.type === "ablate") {
    const what = iv.head != null ? `head ${iv.layer}.${iv.head}` : iv.neuron != null ? `neuron ${iv.layer}.${iv.neuron}` : `attention ${iv.layer}`;
    return `ablate ${what} (${iv.mode ?? "zero"})`;
  }
  if (iv.type === "steer" && iv.sae != null) return `steer feature ${iv.feature} of ${iv.sae} x ${String(iv.scale)}`;
  if (iv.type === "steer") return `steer layer ${iv.layer} (scale ${Number(iv.scale).toFixed(2)})`;
  if (iv.type === "patch") return `patch ${String(iv.hook)}`;
  return `${iv.type} layer ${iv.layer}`;
}

export class Store {
  readonly model: WidgetModel;
  private nextId = 1;
  private pending = new Map<number, { key: string; resolve: (r: Reply | null) => void; reject: (e: Error) => void }>();
  private latestByKey = new Map<string, number>();
  private listeners = new Map<string, Set<Listener>>();
  private seq = 0;
  private inFlight: number | null = null;
  private queued: InterventionJSON[] | null = null;
  /** what the last click asked for, shown until the kernel confirms (or refuses) it */
  private optimistic: InterventionJSON[] | null = null;
  /** the interaction clicks make: toggle an ablation, or only select */
  action: "ablate" | "select" = "ablate";

  constructor(model: WidgetModel) {
    this.model = model;
    model.on("msg:custom", (msg: any, buffers: ArrayLike<DataView | ArrayBuffer>) => this.receive(msg, buffers ?? []));
    for (const name of ["selection", "generation", "intervention_list", "busy", "error", "mode"]) {
      model.on(`change:${name}`, () => this.emit(name));
    }
  }

  // -- state read from the kernel's traits -------------------------------------------
  get selection(): Selection {
    return this.model.get("selection") as Selection;
  }
  get shape(): Shape {
    return this.model.get("shape") as Shape;
  }
  get tokens(): string[] {
    return (this.model.get("tokens") as string[]) ?? [];
  }
  get probes(): ProbeInfo[] {
    return (this.model.get("probes") as ProbeInfo[]) ?? [];
  }
  get saes(): SAEInfo[] {
    return (this.model.get("saes") as SAEInfo[]) ?? [];
  }
  get tokenIds(): number[] {
    return (this.model.get("token_ids") as number[]) ?? [];
  }
  get generation(): number {
    return this.model.get("generation") as number;
  }
  get editable(): boolean {
    return Boolean(this.model.get("editable"));
  }
  get interventions(): InterventionJSON[] {
    return this.optimistic ?? ((this.model.get("intervention_list") as InterventionJSON[]) ?? []);
  }
  get busy(): boolean {
    return this.inFlight !== null || Boolean(this.model.get("busy"));
  }

  select(change: Partial<Selection>): void {
    const next = { ...this.selection, ...change };
    if (JSON.stringify(next) === JSON.stringify(this.selection)) return;
    this.model.set("selection", next);
    this.model.save_changes();
    this.emit("selection");
  }

  setMode(mode: string): void {
    this.model.set("mode", mode);
    this.model.save_changes();
  }

  // -- events ------------------------------------------------------------------------
  /** Listen to `event`; `first` listeners run before the others (their requests reach the kernel first). */
  on(event: string, cb: Listener, first = false): void {
    const current = this.listeners.get(event) ?? new Set<Listener>();
    this.listeners.set(event, first ? new Set([cb, ...current]) : current.add(cb));
  }
  emit(event: string, ...args: unknown[]): void {
    for (const cb of this.listeners.get(event) ?? []) cb(...args);
  }

  // -- requests ----------------------------------------------------------------------
  /**
   * Ask the kernel for `what`. Replies to an older request with the same `key`, or from an older
   * generation of the run, resolve to null: the view asked again since, and must not repaint stale data.
   */
  request(what: string, args: Record<string, unknown> = {}, key: string = what): Promise<Reply | null> {
    const id = this.nextId++;
    this.latestByKey.set(key, id);
    const saved = savedAnswer(this.model.get("snapshot") as SavedReply[] | undefined, { what, ...args }, this.generation);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { key, resolve, reject });
      if (saved) {
        // answered from the answers saved with the widget: no kernel needed (a notebook opened without one)
        queueMicrotask(() => this.receive({ ...saved.reply, id }, saved.buffers.map(fromBase64)));
      } else {
        this.model.send({ type: "get", id, what, ...args });
      }
    });
  }

  /** Ask for `list` to be the interventions; while the kernel runs, only the newest list waits to be sent. */
  setInterventions(list: InterventionJSON[]): void {
    this.optimistic = list;
    this.emit("intervention_list");
    if (this.inFlight !== null) {
      this.queued = list;
    } else {
      this.sendSet(list);
    }
    this.emit("busy");
  }

  toggle(target: Target): void {
    this.setInterventions(toggleAblation(this.interventions, target, (this.model.get("mode") as string) ?? "zero"));
  }

  /** Send a command that changes the run (for example steering along a probe); busy until it is applied. */
  command(content: Record<string, unknown>): void {
    if (this.inFlight !== null) return; // one change at a time; the user can click again
    const id = this.nextId++;
    this.inFlight = id;
    this.latestByKey.set("predictions", id); // the answer carries fresh predictions
    this.model.send({ ...content, id });
    this.emit("busy");
  }

  private sendSet(list: InterventionJSON[]): void {
    const id = this.nextId++;
    this.seq += 1;
    this.inFlight = id;
    this.latestByKey.set("predictions", id); // the answer carries fresh predictions
    this.model.send({ type: "set", id, seq: this.seq, interventions: list });
  }

  private settle(id: number): void {
    if (id !== this.inFlight) return;
    this.inFlight = null;
    if (this.queued) {
      const next = this.queued;
      this.queued = null;
      this.sendSet(next);
    } else {
      this.optimistic = null;
      this.emit("intervention_list");
    }
    this.emit("busy");
  }

  private receive(msg: any, buffers: ArrayLike<DataView | ArrayBuffer>): void {
    if (!msg || typeof msg !== "object") return;
    const id = msg.id as number;
    if (msg.type === "applied") {
      this.settle(id);
      return;
    }
    if (msg.type === "error") {
      const waiting = this.pending.get(id);
      this.pending.delete(id);
      waiting?.reject(new Error(String(msg.message)));
      this.settle(id);
      this.emit("error", String(msg.message));
      return;
    }
    if (msg.type !== "reply") return;
    let reply: Reply;
    try {
      reply = { what: msg.what, gen: msg.gen, data: unpack(msg.data, buffers) };
    } catch (error) {
      this.emit("error", String(error));
      return;
    }
    const waiting = this.pending.get(id);
    this.pending.delete(id);
    const key = waiting?.key ?? msg.what;
    const stale = this.latestByKey.get(key) !== id || reply.gen < this.generation;
    if (waiting) waiting.resolve(stale ? null : reply);
    if (!waiting && !stale) this.emit(`push:${msg.what}`, reply); // answers the kernel sent unasked
  }
}

export type { Tensor };
