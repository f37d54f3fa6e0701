// Predictions: the top next tokens at the selected position, clean and intervened side by side.
import { h, panel, showToken } from "../dom";
import type { Reply, Store } from "../store";

function pct(p: number): string {
  return `${(100 * p).toFixed(1)}%`;
}

function signed(v: number, digits: number, suffix = ""): string {
  return `${v >= 0 ? "+" : "\u2212"}${Math.abs(v).toFixed(digits)}${suffix}`;
}

export function renderPredictions(body: HTMLElement, reply: Reply, tokens: string[], intervened: boolean): void {
  const { data } = reply;
  const k = data.ids.shape[1] as number;
  const column = (row: number, title: string) => {
    const table = h("table", { class: "rw-pred-table", data: { rwColumn: row === 0 ? "clean" : "intervened" } });
    const head = h("tr", {}, [h("th", { text: title }), h("th", { text: "p" })]);
    head.append(h("th", { text: "\u0394p" }), h("th", { text: "\u0394logit" }));
    table.appendChild(head);
    for (let i = 0; i < k; i++) {
      const p = data.probs.data[row * k + i] as number;
      const bar = h("span", { class: "rw-bar" });
      bar.style.width = `${Math.round(60 * p)}px`;
      const tr = h("tr", { data: { rwPrediction: i } }, [
        h("td", { class: "rw-pred-token", text: showToken(data.tokens[row][i]) }),
        h("td", { class: "rw-num" }, [bar, h("span", { text: pct(p) })]),
      ]);
      // for the clean top tokens and for the intervened ones alike: intervened minus clean
      const dp = data.delta_prob.data[row * k + i] as number;
      const dl = data.delta_logit.data[row * k + i] as number;
      const cls = Math.abs(dp) < 5e-4 ? "rw-num" : dp > 0 ? "rw-num rw-up" : "rw-num rw-down";
      tr.append(h("td", { class: cls, text: signed(100 * dp, 1, "%") }), h("td", { class: cls, text: signed(dl, 2) }));
      table.appendChild(tr);
    }
    return table;
  };
  const position = data.position as number;
  body.replaceChildren(
    h("div", { class: "rw-caption", text: `next token after position ${position} ("${showToken(tokens[position] ?? "")}")` }),
    h("div", { class: "rw-columns" }, [column(0, "clean"), column(1, intervened ? "intervened" : "intervened (none)")]),
  );
}

export function mountPredictions(el: HTMLElement, store: Store): void {
  const { root, body } = panel("Predictions", "rw-predictions-view");
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
    store.request("predictions", { position: store.selection.token }).then(paint, () => undefined);
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
  // a predicted token picks the attribution view's target
  body.addEventListener("click", (event) => {
    const row = (event.target as HTMLElement).closest("[data-rw-prediction]") as HTMLElement | null;
    const column = row?.closest("[data-rw-column]") as HTMLElement | null;
    if (!row || !column || !last) return;
    const k = last.data.ids.shape[1] as number;
    const which = column.dataset.rwColumn === "clean" ? 0 : 1;
    store.emit("pick-target", last.data.ids.data[which * k + Number(row.dataset.rwPrediction)] as number);
  });
  fetch();
}
