// A widget model with no kernel behind it: the traits and the answers saved by `ex.save_html`.
// Requests are answered from the saved answers; anything else (a click that would re-run the
// model, a view the snapshot did not save) is answered with an error that says so.
import type { WidgetModel } from "./store";

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

function fromBase64(text: string): DataView {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new DataView(bytes.buffer);
}

type Handler = (...args: any[]) => void;

export class StaticModel implements WidgetModel {
  private state: Record<string, any>;
  private answers = new Map<string, SavedReply>();
  private handlers = new Map<string, Handler[]>();

  constructor(state: Record<string, any>, replies: SavedReply[]) {
    this.state = { ...state, editable: false, busy: false, static: true };
    for (const saved of replies) this.answers.set(requestKey(saved.request), saved);
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
    const id = content?.id;
    const answer = (msg: unknown, buffers: DataView[] = []) =>
      queueMicrotask(() => (this.handlers.get("msg:custom") ?? []).forEach((cb) => cb(msg, buffers)));
    if (content?.type !== "get") {
      answer({ type: "error", id, message: "this is a static snapshot: the interventions are fixed (open the notebook to change them)" });
      return;
    }
    const saved = this.answers.get(requestKey(content));
    if (!saved) {
      const message = `this static snapshot did not save ${String(content.what)} for this selection`;
      this.state.error = message;
      (this.handlers.get("change:error") ?? []).forEach((cb) => cb());
      answer({ type: "error", id, message });
      return;
    }
    answer({ ...saved.reply, id }, saved.buffers.map(fromBase64));
  }
}
