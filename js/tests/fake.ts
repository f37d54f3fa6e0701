// A fake anywidget model: traits in a map, sent messages recorded, kernel messages delivered by hand.
import type { WidgetModel } from "../src/store";

export class FakeModel implements WidgetModel {
  traits: Record<string, any>;
  sent: any[] = [];
  private handlers = new Map<string, ((...args: any[]) => void)[]>();
  constructor(traits: Record<string, any>) {
    this.traits = { ...traits };
  }
  get(name: string) {
    return this.traits[name];
  }
  set(name: string, value: unknown) {
    this.traits[name] = value;
  }
  save_changes() {}
  on(event: string, cb: (...args: any[]) => void) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), cb]);
  }
  off(event: string, cb?: (...args: any[]) => void) {
    this.handlers.set(event, cb ? (this.handlers.get(event) ?? []).filter((h) => h !== cb) : []);
  }
  /** How many listeners are registered on the model. */
  listeners(): number {
    return [...this.handlers.values()].reduce((n, list) => n + list.length, 0);
  }
  send(content: unknown) {
    this.sent.push(content);
  }
  /** The kernel changes a trait. */
  change(name: string, value: unknown) {
    this.traits[name] = value;
    for (const cb of this.handlers.get(`change:${name}`) ?? []) cb();
  }
  /** The kernel sends a custom message. */
  deliver(msg: unknown, buffers: ArrayBuffer[] = []) {
    for (const cb of this.handlers.get("msg:custom") ?? []) cb(msg, buffers.map((b) => new DataView(b)));
  }
}

export function float32(values: number[]): ArrayBuffer {
  return new Float32Array(values).buffer;
}

export function int32(values: number[]): ArrayBuffer {
  return new Int32Array(values).buffer;
}

export function traits(n_tokens = 4, extra: Record<string, unknown> = {}) {
  return {
    views: ["interventions", "tokens", "attention", "neurons", "lens", "predictions"],
    tokens: Array.from({ length: n_tokens }, (_, i) => `t${i}`),
    token_ids: Array.from({ length: n_tokens }, (_, i) => 10 + i),
    shape: {
      n_layers: 2, n_heads: 2, d_mlp: 8, n_tokens, max_side: 512, lens_width: 16, effects: true, max_effects: 1024,
      places: { interventions: "top", tokens: "top", continuation: "top", lens: "side", predictions: "side" },
      then: { what: "predictions", position: "token" },
      modes: [
        { name: "zero", available: true },
        { name: "mean", available: true },
        { name: "resample", available: false, reason: "needs reference texts", hint: "model.set_reference(texts)" },
      ],
    },
    selection: { token: n_tokens - 1, layer: 0, head_layer: 0, head: 0, neuron: null, sae: 0, feature: null, tokens: [], points: [] },
    saes: [],
    generation: 0,
    editable: true,
    busy: false,
    error: "",
    intervention_list: [],
    mode: "zero",
    ...extra,
  };
}

/** A tensor header for a reply and the buffer it points at. */
export function header(dtype: "float32" | "int32" | "uint8", shape: number[], buffer: number) {
  return { dtype, shape, buffer };
}

/** Deliver the kernel's reply to the last `what` request the model saw; returns the request. */
export function answer(model: FakeModel, what: string, data: Record<string, unknown>, buffers: ArrayBuffer[] = [], gen = 0) {
  const request = [...model.sent].reverse().find((m) => m.what === what);
  if (!request) throw new Error(`no ${what} request was sent`);
  model.deliver({ type: "reply", id: request.id, what, gen, data }, buffers);
  return request;
}

/** Let awaited replies paint. */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
