// The results grid: one card per image, in the order the API gives them (newest, best
// ranked, or nearest first), and a "More" button that follows next_cursor. `share`: a share
// link's token, which its pictures are fetched with.

import { breakable, el, headline } from "./dom.js";
import { Pictures } from "./pictures.js";

export function createResults({ list, more, title, notice, onOpen, share = null }) {
  let pictures = new Pictures(share);
  let heading = title.textContent;
  let loadPage = null; // (cursor) => {items, next_cursor}
  let cursor = null;
  // onEnter(), onPage(items, firstRank), onLeave(), controls(image, rank): the search's own
  // extras (controls: an element under a card, or null)
  let hooks = {};
  let shown = 0; // cards so far: a card's rank is its place in the whole answer
  let generation = 0; // a newer search makes older answers stale

  function card(image, rank) {
    const name = image.title || image.filename;
    const img = el("img", { alt: name, width: 256, height: 256, decoding: "async" });
    pictures.show(img, image.thumbnail_url, image);
    // Whose it is: two people's copies of a picture are told apart.
    const caption = el("span", { class: "caption" },
      el("span", { class: "name", title: name }, breakable(name)),
      el("span", { class: "owner" }, `by ${image.owner}`));
    if (image.headline) {
      caption.append(el("span", { class: "headline" }, headline(image.headline)));
    }
    if (image.distance !== undefined) {
      const match = `distance ${image.distance} · score ${image.score.toFixed(2)}`;
      caption.append(el("span", { class: "match" }, match));
    }
    // Matched through a picture inside the query: the number of its box on the query preview.
    const inside = image.matched_by?.query_part === "region";
    if (inside) {
      caption.append(el("span", { class: "found-in" },
        el("span", { class: "box-number" }, String(rank)), " Found inside your photo"));
    }
    if (image.visibility === "private" && !share) {
      caption.append(el("span", { class: "badge" }, "private"));
    }
    const button = el("button", { type: "button", class: "card", "data-box": inside && rank,
      onclick: () => onOpen(image) }, img, caption);
    return el("li", {}, button, hooks.controls?.(image, rank) ?? null);
  }

  async function next() {
    const mine = generation;
    more.hidden = true;
    list.setAttribute("aria-busy", "true");
    try {
      const page = await loadPage(cursor);
      if (mine !== generation) return;
      const first = shown + 1;
      list.append(...page.items.map((image, index) => card(image, first + index)));
      shown += page.items.length;
      hooks.onPage?.(page.items, first);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (!list.children.length) list.append(el("li", { class: "empty" }, "Nothing found."));
    } catch (error) {
      if (mine === generation) notice.error(error);
    } finally {
      if (mine === generation) list.removeAttribute("aria-busy");
    }
  }

  function show(newHeading, loader, newHooks = {}) {
    generation += 1;
    hooks.onLeave?.();
    hooks = newHooks;
    hooks.onEnter?.();
    shown = 0;
    pictures.release();
    pictures = new Pictures(share);
    list.replaceChildren();
    heading = newHeading;
    title.textContent = heading;
    loadPage = loader;
    cursor = null;
    return next();
  }

  // The answer brought into view (a photo dropped low on the page, or its preview, can leave
  // it below the fold): its heading at the top, unless it and the first card are in view.
  function reveal() {
    const top = title.getBoundingClientRect().top;
    const bottom = (list.firstElementChild ?? title).getBoundingClientRect().bottom;
    if (top >= 0 && bottom <= window.innerHeight) return;
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    title.scrollIntoView({ block: "start", behavior: still ? "auto" : "smooth" });
  }

  more.addEventListener("click", () => next());
  return { show, reveal,
    refresh: () => (loadPage ? show(heading, loadPage, hooks) : Promise.resolve()) };
}
