// The results grid: one card per image, in the order the API gives them (newest, best
// ranked, or nearest first), and a "More" button that follows next_cursor.

import { el, headline } from "./dom.js";
import { Pictures } from "./pictures.js";

export function createResults({ list, more, title, notice, onOpen }) {
  let pictures = new Pictures();
  let heading = title.textContent;
  let loadPage = null; // (cursor) => {items, next_cursor}
  let cursor = null;
  let generation = 0; // a newer search makes older answers stale

  function card(image) {
    const name = image.title || image.filename;
    const img = el("img", { alt: name, width: 256, height: 256, decoding: "async" });
    pictures.show(img, image.thumbnail_url, image);
    const caption = el("span", { class: "caption" }, el("span", { class: "name" }, name));
    if (image.headline) {
      caption.append(el("span", { class: "headline" }, headline(image.headline)));
    }
    if (image.distance !== undefined) {
      const match = `distance ${image.distance} · score ${image.score.toFixed(2)}`;
      caption.append(el("span", { class: "match" }, match));
    }
    if (image.visibility === "private") caption.append(el("span", { class: "badge" }, "private"));
    const button = el("button", { type: "button", class: "card", onclick: () => onOpen(image) },
      img, caption);
    return el("li", {}, button);
  }

  async function next() {
    const mine = generation;
    more.hidden = true;
    list.setAttribute("aria-busy", "true");
    try {
      const page = await loadPage(cursor);
      if (mine !== generation) return;
      list.append(...page.items.map(card));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (!list.children.length) list.append(el("li", { class: "empty" }, "Nothing found."));
    } catch (error) {
      if (mine === generation) notice.error(error);
    } finally {
      if (mine === generation) list.removeAttribute("aria-busy");
    }
  }

  function show(newHeading, loader) {
    generation += 1;
    pictures.release();
    pictures = new Pictures();
    list.replaceChildren();
    heading = newHeading;
    title.textContent = heading;
    loadPage = loader;
    cursor = null;
    return next();
  }

  more.addEventListener("click", () => next());
  return { show, refresh: () => (loadPage ? show(heading, loadPage) : Promise.resolve()) };
}
