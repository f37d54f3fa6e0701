// anywidget entry point. The views (tokens, attention, lens, predictions) are built on the codec.
import { decode, type TensorMessage } from "./codec";

interface Model {
  get(name: string): unknown;
  on(event: string, cb: () => void): void;
}

/** Render the run's tokens as text (never HTML), each with its stable selector. */
function render({ model, el }: { model: Model; el: HTMLElement }): void {
  const draw = () => {
    el.replaceChildren();
    const tokens = (model.get("tokens") as string[] | undefined) ?? [];
    tokens.forEach((text, pos) => {
      const span = document.createElement("span");
      span.className = "rw-token";
      span.dataset.rwToken = String(pos);
      span.textContent = text;
      el.appendChild(span);
    });
  };
  model.on("change:tokens", draw);
  draw();
}

export { decode, type TensorMessage };
export default { render };
