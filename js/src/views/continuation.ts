// Continuation: what the model writes after the prompt, clean and with the current interventions side by side,
// streamed a few tokens per request and coloured by how unlikely each token was (1 - p). A stop button ends the
// streams; after a click the intervened column is marked stale until its new continuation arrives. Clicking a
// generated token shows the prompt and that continuation in every view, with that position selected. Each column wraps
// inside itself; the first token where the two continuations differ is outlined in both and named below them.
import { css, ink, sequential } from "../colour";
import { h, panel, showToken } from "../dom";
import type { Reply, Store } from "../store";

export const WHICH = ["clean", "intervened"] as const;

/** How a token is coloured: its improbability 1 - p, 0..1. */
export function surprise(logprob: number): number {
  return Math.min(1, Math.max(0, 1 - Math.exp(logprob)));
}

/** The generated tokens of one reply as spans (`data-rw-gen` is the token's position in prompt + continuation). */
export function renderTokens(text: HTMLElement, reply: Reply, store: Store): void {
  const { data } = reply;
  const start = data.start as number;
  const spans = (data.tokens as string[]).map((token, i) => {
    const logprob = data.logprobs.data[i] as number;
    const colour = sequential(surprise(logprob), store.palette);
    const span = h("span", {
      class: "rw-gen-token",
      text: showToken(token),
      title: `position ${start + i} · p ${(100 * Math.exp(logprob)).toFixed(1)}% (log-prob ${logprob.toFixed(2)})`,
      data: { rwGen: start + i },
    });
    span.style.background = css(colour);
    span.style.color = ink(colour);
    if (store.selection.token === start + i && store.tokens.length > start) span.classList.add("rw-selected");
    return span;
  });
  text.replaceChildren(...spans);
}

/** Where two continuations first differ (index into the generated tokens), or null while they agree (`done`: both
 * finished, so a shorter one differs where it ends). */
export function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>, done: boolean): number | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return done && a.length !== b.length ? n : null;
}

interface Column {
  root: HTMLElement;
  text: HTMLElement;
  note: HTMLElement;
  running: boolean;
  stopping: boolean;
  ids: ArrayLike<number>;
  done: boolean;
}

export function mountContinuation(el: HTMLElement, store: Store): void {
  const parts = panel("Continuation", "rw-continuation-view", store, false);
  const { root, body } = parts;
  root.dataset.rwContinuation = "";
  el.appendChild(root);
  const stop = h("button", { class: "rw-small", text: "stop", data: { rwStop: "" }, attrs: { "aria-label": "stop generating" } });
  const columns: Column[] = WHICH.map((which) => {
    const text = h("div", { class: "rw-gen-text" });
    const note = h("div", { class: "rw-caption", data: { rwGenStatus: "" } });
    const head = h("div", { class: "rw-gen-head", text: which });
    const column = h("div", { class: "rw-gen-column", data: { rwColumn: which } }, [head, text, note]);
    return { root: column, text, note, running: false, stopping: false, ids: [] as number[], done: false };
  });
  const differ = h("div", { class: "rw-caption rw-gen-differ", data: { rwFirstDiffNote: "" } });
  const legend = h("div", { class: "rw-caption", text: "greedy; colour: how unlikely each token was (1 \u2212 p). Click a token to see it in every view." });
  body.replaceChildren(h("div", { class: "rw-columns" }, columns.map((c) => c.root)), differ, h("div", { class: "rw-gen-bar" }, [stop, legend]));
  /** Outline the first token where the clean and the intervened continuations differ, in both columns. */
  const markDifference = () => {
    for (const old of Array.from(body.querySelectorAll(".rw-gen-first-diff"))) {
      old.classList.remove("rw-gen-first-diff");
      old.removeAttribute("data-rw-first-diff");
    }
    if (columns[1].root.hidden) {
      differ.textContent = "";
      return;
    }
    const k = firstDifference(columns[0].ids, columns[1].ids, columns[0].done && columns[1].done);
    if (k === null) {
      differ.textContent = columns[0].done && columns[1].done ? "the two continuations are the same" : "";
      return;
    }
    const words: string[] = [];
    for (const column of columns) {
      const span = column.text.children[k] as HTMLElement | undefined;
      if (!span) continue;
      span.classList.add("rw-gen-first-diff");
      span.dataset.rwFirstDiff = String(k);
      words.push(`"${span.textContent}"`);
    }
    differ.textContent = `first differs at generated token ${k + 1}${words.length === 2 ? ` (${words[0]} vs ${words[1]})` : ""}, outlined`;
    differ.dataset.rwFirstDiffNote = String(k);
  };
  let epoch = 0;
  const refreshStop = () => {
    stop.disabled = !columns.some((c) => c.running);
    root.dataset.rwStreaming = String(columns.filter((c) => c.running).length);
  };

  const stream = async (i: number, mine: number) => {
    const column = columns[i];
    column.running = true;
    refreshStop();
    try {
      for (;;) {
        const reply = await store.request("continuation", { which: i, stop: column.stopping ? 1 : 0 }, `continuation-${i}`);
        if (!reply || mine !== epoch) return; // a newer stream (after a click) took over
        renderTokens(column.text, reply, store);
        column.ids = reply.data.ids.data as ArrayLike<number>;
        column.done = Boolean(reply.data.done);
        markDifference();
        delete column.root.dataset.rwStale;
        column.root.title = (reply.data.labels as string[]).join("; ");
        const n = (reply.data.tokens as string[]).length;
        column.note.textContent = reply.data.done ? `${n} tokens (${reply.data.stopped || "done"})` : `generating\u2026 ${n} tokens`;
        column.root.dataset.rwDone = String(Boolean(reply.data.done));
        if (reply.data.done) return;
      }
    } catch (error) {
      column.note.textContent = String((error as Error).message ?? error);
    } finally {
      if (mine === epoch) {
        column.running = false;
        column.stopping = false;
        refreshStop();
      }
    }
  };

  let started = -1; // the generation whose continuations are shown
  const start = () => {
    epoch += 1;
    started = store.generation;
    const intervened = store.interventions.length > 0;
    columns[1].root.hidden = !intervened;
    columns[0].root.querySelector(".rw-gen-head")!.textContent = intervened ? "clean" : "continuation";
    columns.forEach((column, i) => {
      column.running = false;
      column.stopping = false;
      column.done = false;
      if (i === 1 && !intervened) return;
      void stream(i, epoch);
    });
  };
  // new interventions (a click, or Python): the intervened continuation is marked stale at once, and both are asked
  // for again once the kernel has the new run (what did not change comes back at once)
  const follow = () => {
    if (store.busy && columns[1].text.childElementCount) columns[1].root.dataset.rwStale = "";
    if (!store.busy && store.generation !== started) start();
  };
  store.on("generation", follow);
  store.on("busy", follow);

  stop.addEventListener("click", () => {
    for (const column of columns) if (column.running) column.stopping = true;
  });
  body.addEventListener("click", (event) => {
    const span = (event.target as HTMLElement).closest("[data-rw-gen]") as HTMLElement | null;
    const column = span?.closest("[data-rw-column]") as HTMLElement | null;
    if (!span || !column || !store.editable) return;
    store.command({ type: "show_continuation", which: column.dataset.rwColumn, position: Number(span.dataset.rwGen) }, span);
  });
  store.on("selection", () => {
    for (const column of columns)
      for (const span of Array.from(column.text.querySelectorAll<HTMLElement>("[data-rw-gen]")))
        span.classList.toggle("rw-selected", Number(span.dataset.rwGen) === store.selection.token && store.tokens.length > Number(span.dataset.rwGen));
  });
  start();
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountContinuation;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-gen-column { flex: 1 1 240px; min-width: 0; }
.rw-gen-column[data-rw-stale] .rw-gen-text { opacity: 0.45; }
.rw-gen-column[data-rw-stale] .rw-gen-head::after { content: " (stale: regenerating\u2026)"; color: var(--rw-muted); font-weight: normal; }
.rw-gen-head { font-weight: 600; color: var(--rw-fg); }
.rw-gen-text { font-family: var(--rw-mono); font-size: 12px; line-height: 1.9; overflow-wrap: anywhere; }
.rw-gen-token { display: inline-block; max-width: 100%; padding: 0 1px; margin-right: 3px; border-radius: 2px; cursor: pointer;
  line-height: 1.5; overflow-wrap: anywhere; }
.rw-gen-token.rw-gen-first-diff { outline: 2px dashed var(--rw-fg); outline-offset: 1px; }
.rw-gen-token.rw-selected { outline: 2px solid var(--rw-select); }
.rw-gen-bar { display: flex; gap: 8px; align-items: center; }
`;
