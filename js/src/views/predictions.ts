// Predictions: the top next tokens at the selected position; with interventions, clean and intervened side by
// side (the clean table says where each clean favourite went, the intervened one how each token changed, in
// percentage points and logits). Rows below half a percent that did not move are folded into one line.
import { h, panel, showToken, signed, track } from "../dom";
import { lassoCaption, overLasso } from "../lasso";
import type { Reply, Store } from "../store";

/** A row is listed when its probability or its change is at least this (at least MIN_ROWS are listed, unless
 * they would read 0.0%: the top row always). */
export const SHOWN = 0.005;
const MIN_ROWS = 3;
const ZERO = 0.0005; // prints as 0.0%

function pct(p: number): string {
  return `${(100 * p).toFixed(1)}%`;
}

/** A probability cell: the number over a bar as long as the probability (also the classes view's). */
export function probability(p: number): HTMLTableCellElement {
  const cell = h("td", { class: "rw-num rw-p", text: pct(p) });
  const width = Math.round(100 * Math.max(0, Math.min(1, p)));
  cell.style.background = `linear-gradient(to right, var(--rw-bar) ${width}%, transparent ${width}%)`;
  return cell;
}

/** The class of a cell showing a change `dp`: up, down, or none (under 0.05 points). */
export function changeClass(dp: number): string {
  return Math.abs(dp) < 5e-4 ? "rw-num" : dp > 0 ? "rw-num rw-up" : "rw-num rw-down";
}

export function renderPredictions(body: HTMLElement, reply: Reply, tokens: string[], intervened: boolean, caption?: HTMLElement): void {
  const { data } = reply;
  const k = data.ids.shape[1] as number;
  const column = (row: number) => {
    const name = row === 0 ? "clean" : "intervened";
    const table = h("table", { class: "rw-pred-table", data: { rwColumn: name } });
    const head = h("tr", {}, [h("th", { text: intervened ? name : "next token" }), h("th", { text: "p" })]);
    if (intervened && row === 0) head.append(h("th", { text: "\u2192 now", title: "its probability with the interventions" }));
    if (intervened && row === 1)
      head.append(
        h("th", { text: "\u0394p", title: "change in probability, in percentage points (intervened minus clean)" }),
        h("th", { text: "\u0394logit", title: "change in logit (intervened minus clean)" }),
      );
    table.appendChild(head);
    let folded = 0;
    for (let i = 0; i < k; i++) {
      const p = data.probs.data[row * k + i] as number;
      const dp = data.delta_prob.data[row * k + i] as number;
      const dl = data.delta_logit.data[row * k + i] as number;
      if ((i >= MIN_ROWS || (i > 0 && p < ZERO)) && p < SHOWN && Math.abs(dp) < SHOWN) {
        folded += 1;
        continue;
      }
      const tr = h("tr", { data: { rwPrediction: i } }, [
        h("td", { class: "rw-pred-token", text: showToken(data.tokens[row][i]), attrs: { tabindex: 0, role: "button", "aria-label": `${showToken(data.tokens[row][i])}: Enter picks it as the attribution's target (alt+Enter: foil)` } }),
        probability(p),
      ]);
      // for the clean top tokens and for the intervened ones alike, dp and dl are intervened minus clean
      if (intervened && row === 0) tr.append(h("td", { class: changeClass(dp), text: pct(p + dp), title: `${signed(100 * dp, 1, "pp")}` }));
      if (intervened && row === 1)
        tr.append(h("td", { class: changeClass(dp), text: signed(100 * dp, 1, "pp") }), h("td", { class: changeClass(dp), text: signed(dl, 2) }));
      table.appendChild(tr);
    }
    const wrap = h("div", {}, [table]);
    if (folded) wrap.appendChild(h("div", { class: "rw-more", text: `+ ${folded} more under ${100 * SHOWN}%` }));
    return wrap;
  };
  const position = data.position as number;
  body.replaceChildren(
    caption ??
      h("div", {
        class: "rw-caption",
        text: `next token after position ${position} ("${showToken(tokens[position] ?? "")}")`,
        title: "click a token: the attribution view's target; alt+click: its foil",
      }),
    h("div", { class: "rw-columns" }, intervened ? [column(0), column(1)] : [column(1)]),
  );
}

export function mountPredictions(el: HTMLElement, store: Store): void {
  const parts = panel("Predictions", "rw-predictions-view", store);
  const { root, body } = parts;
  root.dataset.rwPredictions = "";
  el.appendChild(root);
  let painted = 0;
  let last: Reply | null = null;
  const paint = (reply: Reply | null) => {
    if (!reply) return;
    last = reply;
    renderPredictions(body, reply, store.tokens, store.interventions.length > 0);
    painted += 1;
    root.dataset.rwGen = String(reply.gen);
    root.dataset.rwPainted = String(painted);
  };
  const fetch = () => {
    track(parts, store.request("predictions", { position: store.selection.token })).then(paint, () => undefined);
  };
  let token = store.selection.token;
  // what a reader looks at first is asked for first: the kernel answers messages in order
  store.on(
    "selection",
    () => {
      if (store.selection.token !== token) {
        token = store.selection.token;
        fetch();
      }
    },
    true,
  );
  // after a click the kernel's answer carries the new predictions; refetch only for changes made in Python
  store.on("generation", () => {
    if (!store.busy) fetch();
  });
  store.on("push:predictions", paint);
  // a predicted token picks the attribution view's target (alt+click: its foil)
  const pick = (event: MouseEvent | KeyboardEvent) => {
    const row = (event.target as HTMLElement).closest("[data-rw-prediction]") as HTMLElement | null;
    const column = row?.closest("[data-rw-column]") as HTMLElement | null;
    if (!row || !column || !last) return;
    const k = last.data.ids.shape[1] as number;
    const which = column.dataset.rwColumn === "clean" ? 0 : 1;
    const id = last.data.ids.data[which * k + Number(row.dataset.rwPrediction)] as number;
    store.emit(event.altKey ? "pick-foil" : "pick-target", id);
  };
  body.addEventListener("click", pick);
  body.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.target as HTMLElement).closest(".rw-pred-token")) pick(event);
  });
  fetch();
  // the mean next-token probabilities over the projector's lasso
  overLasso(parts, store, (tokens) => store.request("predictions_over", { tokens }), (reply) => {
    if (reply.data.note) return [lassoCaption(reply.data.note as string, reply.data.over as number)];
    const box = h("div");
    const caption = lassoCaption("mean next-token probability", reply.data.over as number);
    renderPredictions(box, reply, store.tokens, store.interventions.length > 0, caption);
    return [box];
  });
}

/** How the widget mounts this view (widget.ts finds it by its file name, the kernel panel's name). */
export const mount = mountPredictions;

/** The view's own styles, after the shared ones (style.ts). */
export const styles = `
.rw-root[data-rw-layout="narrow"] .rw-predictions-view { order: 2; }
.rw-pred-table { border-collapse: collapse; font-size: 12px; }
.rw-pred-table td, .rw-pred-table th { padding: 1px 5px; text-align: left; }
.rw-pred-table th { color: var(--rw-fg); font-weight: 600; }
.rw-pred-token { font-family: var(--rw-mono); white-space: pre; max-width: 90px; overflow: hidden; text-overflow: ellipsis; }
.rw-p { min-width: 56px; }
.rw-up { color: var(--rw-up); } .rw-down { color: var(--rw-down); }
.rw-more { color: var(--rw-muted); font-size: 11px; }
`;
