// The Albums section: the albums one may see (one's own and public ones, newest first), each
// opening in the grid; signed in, a form makes a new one.

import { call } from "./api.js";
import { el, errorText } from "./dom.js";
import * as session from "./session.js";

const PAGE = 50;

export function setupAlbums({ section, list, more, form, error, onOpen }) {
  let cursor = null;
  let generation = 0;

  function item(album) {
    const count = `${album.image_count} image${album.image_count === 1 ? "" : "s"}`;
    const facts = [`by ${album.owner}`, count];
    if (album.visibility === "private") facts.push("private");
    return el("li", {}, el("button", { type: "button", class: "album-item",
      onclick: () => onOpen(album) },
    el("span", { class: "name" }, album.title),
    el("span", { class: "facts" }, facts.join(" · "))));
  }

  async function load(reset) {
    const mine = reset ? (generation += 1) : generation;
    if (reset) cursor = null;
    more.hidden = true;
    try {
      const page = await call("/albums", { query: { limit: PAGE, cursor } });
      if (mine !== generation) return;
      if (reset) list.replaceChildren();
      list.append(...page.albums.map(item));
      if (!list.children.length) list.append(el("li", { class: "empty" }, "No albums yet."));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      error.textContent = "";
    } catch (failure) {
      if (mine === generation) error.textContent = errorText(failure);
    }
  }

  function render() {
    form.hidden = !session.current();
    if (section.open) load(true);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const title = form.elements.title.value.trim();
    if (!title) {
      error.textContent = "Give the album a title.";
      return;
    }
    try {
      const album = await call("/albums", { method: "POST",
        json: { title, visibility: form.elements.visibility.value } });
      form.reset();
      await load(true);
      onOpen(album);
    } catch (failure) {
      error.textContent = errorText(failure);
    }
  });
  more.addEventListener("click", () => load(false));
  section.addEventListener("toggle", () => {
    if (section.open) load(true);
  });
  session.onChange(render);
  render();
  return { reload: () => load(true) };
}
