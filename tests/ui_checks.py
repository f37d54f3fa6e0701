"""What only a browser shows about the widget, measured in the page: text contrast (WCAG 2) from computed styles,
where the selection is, and JupyterLab's theme switched from its own menu."""

from __future__ import annotations

import re

#: every text of the widgets under ``root`` with its contrast against what is painted behind it. Text is an
#: element's own text node; the background is composited from the element up to the first opaque one (the page's
#: if none); colours with alpha and ancestors' opacity count. Disabled controls and <option>s are left out
#: (WCAG 1.4.3 exempts inactive controls; options are drawn by the browser).
CONTRAST = """(root) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const pageBg = parse(getComputedStyle(document.body).backgroundColor) || [255, 255, 255, 1];
  const base = pageBg[3] === 0 ? [255, 255, 255, 1] : pageBg;
  const background = (el) => {
    const layers = [];
    let opacity = 1;
    for (let e = el; e && e.nodeType === 1; e = e.parentElement || (e.getRootNode() && e.getRootNode().host)) {
      const style = getComputedStyle(e);
      opacity *= Number(style.opacity);
      const bg = parse(style.backgroundColor);
      if (bg && bg[3] > 0) {
        layers.push(bg);
        if (bg[3] >= 1) break;
      }
    }
    let colour = layers.length && layers[layers.length - 1][3] >= 1 ? layers.pop() : base;
    while (layers.length) colour = over(layers.pop(), colour);
    return { colour, opacity };
  };
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.textContent.trim()) continue;
    seen.add(el);
    if (el.closest('option, [disabled], [hidden], canvas, style, script')) continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!box.width || !box.height || style.visibility === 'hidden') continue;
    const { colour, opacity } = background(el);
    const fg = parse(style.color);
    const text = over([fg[0], fg[1], fg[2], fg[3] * opacity], colour);
    const hi = Math.max(lum(text), lum(colour)), lo = Math.min(lum(text), lum(colour));
    out.push({ text: node.textContent.trim().slice(0, 40), cls: el.className && String(el.className).slice(0, 60),
               ratio: Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100,
               fg: style.color, bg: 'rgb(' + colour.slice(0, 3).map(Math.round).join(',') + ')' });
  }
  return out;
}"""


def settled(locator, timeout: float = 60_000) -> None:
    """Wait until the widget is neither busy nor loading (its stale panels are dimmed meanwhile), and its fade ends."""
    locator.page.wait_for_function(
        "(el) => !el.hasAttribute('data-rw-busy') && !el.querySelector('[data-rw-loading]')",
        arg=locator.element_handle(),
        timeout=timeout,
        polling=100,
    )
    locator.page.wait_for_timeout(500)


def ratio(a: list[float], b: list[float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours (0-255 each; an alpha channel, if any, is ignored)."""

    def luminance(c: list[float]) -> float:
        f = [v / 255 for v in c[:3]]
        f = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in f]
        return 0.2126 * f[0] + 0.7152 * f[1] + 0.0722 * f[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def contrast(locator) -> list[dict]:
    """The contrast of every text in the element ``locator`` finds (see :data:`CONTRAST`), once it has settled."""
    settled(locator)
    return locator.evaluate(CONTRAST)


def worst(measured: list[dict], n: int = 8) -> list[dict]:
    return sorted(measured, key=lambda m: m["ratio"])[:n]


def set_theme(page, name: str) -> None:
    """Switch JupyterLab's theme from its Settings menu ("JupyterLab Light" or "JupyterLab Dark")."""
    light = "true" if name == "JupyterLab Light" else "false"
    if page.evaluate("() => document.body.dataset.jpThemeLight") == light:
        return
    page.get_by_role("menuitem", name="Settings", exact=True).click()
    page.locator(".lm-Menu-item[data-type=submenu]", has_text="Theme").first.hover()
    label = page.locator(".lm-Menu-item .lm-Menu-itemLabel").filter(has_text=re.compile(f"^{re.escape(name)}$"))
    label.first.click()
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    page.wait_for_timeout(800)  # the theme's CSS applied, the widgets repainted


def scroll_to_top(page, locator) -> None:
    """Put the top of ``locator``'s element at the top of the notebook's scrolling area (a learner scrolled to it)."""
    locator.evaluate(
        """(el) => {
          let box = el.closest('.jp-Cell') || el;
          for (let p = el.parentElement; p; p = p.parentElement) {
            const style = getComputedStyle(p);
            if (/(auto|scroll)/.test(style.overflowY) && p.scrollHeight > p.clientHeight) {
              p.scrollTop += el.getBoundingClientRect().top - p.getBoundingClientRect().top - 8;
              return;
            }
          }
          el.scrollIntoView({block: 'start'});
        }"""
    )
    page.wait_for_timeout(300)


#: why an element is not wholly visible: outside the viewport, or covered or clipped at its centre or a corner (null
#: when every one of those points shows the element itself)
HIDDEN_BY = """(el) => {
  const box = el.getBoundingClientRect();
  if (!box.width || !box.height) return 'no size';
  if (box.top < 0 || box.left < 0 || box.bottom > innerHeight || box.right > innerWidth)
    return `outside the viewport: ${JSON.stringify(box)}`;
  const inset = Math.min(2, box.width / 4, box.height / 4);
  const points = [[box.left + box.width / 2, box.top + box.height / 2], [box.left + inset, box.top + inset],
                  [box.right - inset, box.top + inset], [box.left + inset, box.bottom - inset],
                  [box.right - inset, box.bottom - inset]];
  for (const [x, y] of points) {
    const top = document.elementFromPoint(x, y);
    if (!top || !(top === el || el.contains(top))) {
      const shown = top ? top.tagName + '.' + top.className : 'nothing';
      return `at (${Math.round(x)}, ${Math.round(y)}) the page shows ${shown}`;
    }
  }
  return null;
}"""


def hidden_by(locator) -> str | None:
    """Why the element is not wholly visible (outside the viewport, or clipped by a scrolling ancestor), or None."""
    return locator.evaluate(HIDDEN_BY)


def in_viewport(page, locator) -> bool:
    """Whether the element is wholly inside the browser's viewport and not clipped by a scrolling ancestor."""
    return hidden_by(locator) is None
