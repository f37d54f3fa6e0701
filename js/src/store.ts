// The shared state of one rendered view of a widget: the selection, the request/reply loop with the kernel,
// and the interventions queue (while the kernel runs, newer clicks replace older ones: the last click wins).
// A widget shown twice has two stores on one model: request ids are unique across them and each store
// answers only to replies to its own requests.
import { decode, type Tensor, type TensorMessage } from "./codec";
import { LIGHT, type Palette } from "./colour";
import { isAblated, type Target, toggleAblation, wire } from "./interventions";
import { fromBase64, savedAnswer, type SavedReply } from "./static";
import type { Data, InterventionJSON, ProbeInfo, Reply, SAEInfo, Selection, Shape, WidgetModel } from "./types";

export type { Data, InterventionJSON, ProbeInfo, Reply, SAEInfo, Selection, Shape, WidgetModel } from "./types";

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

/** A random name for one rendered view (what its request ids start with). */
function viewName(): string {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  return random.replace(/-/g, "").slice(0, 16);
}

interface Pending {
  key: string;
  what: string;
  resolve: (r: Reply | null) => void;
  reject: (e: Error) => void;
}

export class Store {
  readonly model: WidgetModel;
  /** this view's name: its request ids and its clicks' sequence numbers are its own */
  readonly view = viewName();
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private latestByKey = new Map<string, string>();
  private listeners = new Map<string, Set<Listener>>();
  private modelListeners: [string, Listener][] = [];
  private seq = 0;
  private inFlight: string | null = null;
  private queued: InterventionJSON[] | null = null;
  /** what the last click asked for, shown until the kernel confirms (or refuses) it */
  private optimistic: InterventionJSON[] | null = null;
  /** the control whose click is being applied (marked `data-rw-pending` until the kernel answers) */
  private origin: HTMLElement | null = null;
  private originPanel: HTMLElement | null = null;
  /** the colours of the page the widget sits on (set by the widget from its computed background) */
  palette: Palette = LIGHT;
  /** the store the views were rebuilt on after the text changed (a continuation shown), if any */
  successor: Store | null = null;
  disposed = false;

  constructor(model: WidgetModel) {
    this.model = model;
    this.listen("msg:custom", (msg: any, buffers: ArrayLike<DataView | ArrayBuffer>) => this.receive(msg, buffers ?? []));
    // Changes that come with new tokens (a continuation shown) arrive in any order (the kernel's traits are a set):
    // once the tokens differ from those the views were built for, only the rebuild ("token_ids") is announced, so no
    // view reads a selection or shape of the new text against the old one.
    const ids = () => JSON.stringify(model.get("token_ids") ?? []);
    const built = ids();
    let rebuilding = false;
    for (const name of ["selection", "generation", "intervention_list", "busy", "error", "mode", "shape", "token_ids"]) {
      this.listen(`change:${name}`, () => {
        if (ids() === built) this.emit(name);
        else if (!rebuilding) {
          rebuilding = true;
          this.emit("token_ids");
        }
      });
    }
  }

  private listen(event: string, cb: Listener): void {
    this.model.on(event, cb);
    this.modelListeners.push([event, cb]);
  }

  /** Stop listening to the model and forget pending requests (the view was removed). */
  dispose(): void {
    this.disposed = true;
    this.emit("dispose");
    this.pendingAt(null);
    for (const [event, cb] of this.modelListeners) this.model.off?.(event, cb);
    this.modelListeners = [];
    this.listeners.clear();
    for (const waiting of this.pending.values()) waiting.resolve(null);
    this.pending.clear();
  }

  /** The store the views use now (this one, or the one they were rebuilt on). */
  current(): Store {
    return this.successor ? this.successor.current() : this;
  }

  // -- state read from the kernel's traits -------------------------------------------
  get selection(): Selection {
    const selection = this.model.get("selection") as Selection;
    // a page saved before heads had their own layer: the head's layer was the shared one (an image explorer's
    // selection has no head: nothing to add, the kernel would refuse the key)
    const old = selection.head_layer === undefined && selection.head !== undefined;
    return old ? { ...selection, head_layer: selection.layer } : selection;
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

  /** Call `cb` when any of the selection's `keys` changes (and `always` on every selection change). */
  watch(keys: (keyof Selection)[], cb: () => void, always?: () => void): void {
    const current = () => JSON.stringify(keys.map((k) => this.selection[k]));
    let last = current();
    this.on("selection", () => {
      const now = current();
      if (now !== last) {
        last = now;
        cb();
      }
      always?.();
    });
  }

  // -- requests ----------------------------------------------------------------------
  private newId(): string {
    return `${this.view}-${this.nextId++}`;
  }

  /**
   * Ask the kernel for `what`. Replies to an older request with the same `key`, or from an older
   * generation of the run, resolve to null: the view asked again since, and must not repaint stale data.
   */
  request(what: string, args: Record<string, unknown> = {}, key: string = what): Promise<Reply | null> {
    const id = this.newId();
    this.latestByKey.set(key, id);
    const saved = savedAnswer(this.model.get("snapshot") as SavedReply[] | undefined, { what, ...args }, this.generation);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { key, what, resolve, reject });
      if (saved) {
        // answered from the answers saved with the widget: no kernel needed (a notebook opened without one)
        queueMicrotask(() => this.receive({ ...saved.reply, id }, saved.buffers.map(fromBase64)));
      } else {
        this.model.send({ type: "get", id, what, ...args });
      }
    });
  }

  /** Whether `target` is ablated now (as far as this view knows: its last click counts). */
  ablated(target: Target): boolean {
    return isAblated(this.interventions, target);
  }

  /** Mark `origin` (the control clicked) as waiting for the kernel; the previous one stops waiting. */
  private pendingAt(origin: HTMLElement | null | undefined): void {
    if (this.origin && this.origin !== origin) delete this.origin.dataset.rwPending;
    this.origin = origin ?? null;
    this.originPanel = (origin?.closest(".rw-panel") as HTMLElement | null) ?? null;
    if (this.origin) this.origin.dataset.rwPending = "";
  }

  /** The panel whose control is waiting for the kernel, if any (kept if a repaint replaced the control). */
  get pendingPanel(): HTMLElement | null {
    return this.originPanel;
  }

  /** Ask for `list` to be the interventions; while the kernel runs, only the newest list waits to be sent.
   * `origin`: the control clicked, marked as waiting until the kernel answers. */
  setInterventions(list: InterventionJSON[], origin?: HTMLElement | null): void {
    this.pendingAt(origin);
    this.optimistic = list;
    this.emit("intervention_list");
    if (this.inFlight !== null) {
      this.queued = list;
    } else {
      this.send({ type: "set", interventions: wire(list) });
    }
    this.emit("busy");
  }

  /** Ablate `target` (in the widget's mode), or remove its ablation. */
  toggle(target: Target, origin?: HTMLElement | null): void {
    this.setInterventions(toggleAblation(this.interventions, target, (this.model.get("mode") as string) ?? "zero"), origin);
  }

  /** Send a command that changes the run (for example steering along a probe); busy until it is applied. */
  command(content: Record<string, unknown>, origin?: HTMLElement | null): void {
    if (this.inFlight !== null) return; // one change at a time; the user can click again
    this.pendingAt(origin);
    this.send(content);
    this.emit("busy");
  }

  /** Send a command with this view's name and next sequence number; its answer carries the request a panel asks
   * to ride along (the kernel's `shape.then`: its name, and per field the selection key that fills it). */
  private send(content: Record<string, unknown>): void {
    const id = this.newId();
    this.seq += 1;
    this.inFlight = id;
    const asked = ((this.model.get("shape") as Shape | undefined) ?? ({} as Shape)).then;
    let then: Record<string, unknown> | undefined;
    if (asked?.what) {
      then = { what: asked.what };
      for (const [field, key] of Object.entries(asked)) if (field !== "what") then[field] = this.selection[key];
      this.latestByKey.set(asked.what, id);
    }
    this.model.send({ ...content, id, view: this.view, seq: this.seq, ...(then ? { then } : {}) });
  }

  private settle(id: string): void {
    if (id !== this.inFlight) return;
    this.inFlight = null;
    if (this.queued) {
      const next = this.queued;
      this.queued = null;
      this.send({ type: "set", interventions: wire(next) });
    } else {
      this.optimistic = null;
      this.pendingAt(null);
      this.emit("intervention_list");
    }
    this.emit("busy");
  }

  private mine(id: unknown): id is string {
    return typeof id === "string" && id.startsWith(`${this.view}-`);
  }

  private receive(msg: any, buffers: ArrayLike<DataView | ArrayBuffer>): void {
    if (!msg || typeof msg !== "object" || !this.mine(msg.id)) return; // another view's answer
    const id = msg.id;
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
    if (waiting && waiting.what !== reply.what) return; // not the answer to this request
    this.pending.delete(id);
    const key = waiting?.key ?? msg.what;
    const stale = this.latestByKey.get(key) !== id || reply.gen < this.generation;
    if (waiting) waiting.resolve(stale ? null : reply);
    if (!waiting && !stale) this.emit(`push:${msg.what}`, reply); // what rode along with a command's answer
  }
}

export type { Tensor, Target };
