// Answers saved with a widget (`ex.embed()`, `ex.save_html`): the store answers requests from them
// before asking the kernel, and a widget with no kernel behind it (a saved page) lives on them alone.
import type { WidgetModel } from "./types";

/** One saved answer: the request (without id), the reply content and its buffers as base64. */
export interface SavedReply {
  request: Record<string, unknown>;
  reply: Record<string, unknown>;
  buffers: string[];
}

/** A request as a key that does not depend on the order of its fields (the id and type left out). */
export function requestKey(request: Record<string, unknown>): string {
  const { id: _id, type: _type, ...rest } = request;
  return JSON.stringify(Object.keys(rest).sort().map((key) => [key, rest[key]]));
}

export function fromBase64(text: string): DataView {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new DataView(bytes.buffer);
}

/** The saved answer to `request` for run generation `gen`, if there is one. */
export function savedAnswer(saved: SavedReply[] | undefined, request: Record<string, unknown>, gen: number): SavedReply | null {
  if (!saved?.length) return null;
  const key = requestKey(request);
  return saved.find((s) => s.reply.gen === gen && requestKey(s.request) === key) ?? null;
}

type Handler = (...args: any[]) => void;

/** A widget model with no kernel: the saved traits (answers in `snapshot`); whatever the store sends
 * (a request the snapshot lacks, a click that would re-run the model) gets an error reply that says so, and a
 * request the snapshot lacks a calm `notice` saying what the page saved and how to save more. */
export class StaticModel implements WidgetModel {
  private state: Record<string, any>;
  private handlers = new Map<string, Handler[]>();

  constructor(state: Record<string, any>, replies: SavedReply[]) {
    this.state = { ...state, snapshot: replies, editable: false, busy: false, static: true };
  }

  get(name: string): any {
    return this.state[name];
  }
  set(name: string, value: unknown): void {
    this.state[name] = value;
  }
  save_changes(): void {
    // the selection lives in the page; there is no kernel to tell
  }
  on(event: string, cb: Handler): void {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), cb]);
  }
  off(event: string, cb?: Handler): void {
    this.handlers.set(event, cb ? (this.handlers.get(event) ?? []).filter((h) => h !== cb) : []);
  }
  send(content: any): void {
    const message =
      content?.type === "get"
        ? `Not saved in this page: the ${String(content.what)} for this selection. ${this.state.unsaved ?? ""}`.trim()
        : "this is a static snapshot: the interventions are fixed (open the notebook to change them)";
    if (content?.type === "get") {
      // a calm note, not an error: the page holds what was saved (the state's `unsaved` says what, and how to save more)
      this.state.notice = message;
      (this.handlers.get("change:notice") ?? []).forEach((cb) => cb());
    }
    queueMicrotask(() => (this.handlers.get("msg:custom") ?? []).forEach((cb) => cb({ type: "error", id: content?.id, message }, [])));
  }
}
