// Browsing and text search: the form's fields become GET /images (no words) or GET /search
// (words, in the API's web-search syntax) with the same filters.

import { call } from "./api.js";

const PAGE = 24;

const isMe = (owner) => owner?.toLowerCase() === "me";

export function setupBrowse({ form, newest, results }) {
  let shown = null; // the fields of the results on show, while they are these

  function fields() {
    const data = new FormData(form);
    const value = (name) => String(data.get(name) ?? "").trim();
    return { q: value("q"), owner: value("owner"), tag: value("tag"),
      visibility: value("visibility") };
  }

  function load(heading, loader, asked) {
    const done = results.show(heading, loader, { onLeave: () => { shown = null; } });
    shown = asked;
    return done;
  }

  function run(asked = fields()) {
    const { q, ...filters } = asked;
    if (q) {
      return load(`Search: ${q}`, async (cursor) => {
        const page = await call("/search", { query: { q, ...filters, limit: PAGE, cursor } });
        return { items: page.results, next_cursor: page.next_cursor };
      }, asked);
    }
    const narrowed = Object.values(filters).some(Boolean);
    return load(narrowed ? "Images, filtered" : "Newest images", async (cursor) => {
      const page = await call("/images", { query: { ...filters, limit: PAGE, cursor } });
      return { items: page.images, next_cursor: page.next_cursor };
    }, asked);
  }

  // Signed out, "me" is nobody: the filter goes, from the form and from the results on show,
  // which are asked for again without it. True if they were.
  function signedOut() {
    const owner = form.elements.owner;
    if (isMe(owner.value.trim())) owner.value = "";
    if (!isMe(shown?.owner)) return false;
    run({ ...shown, owner: "" });
    return true;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  newest.addEventListener("click", () => {
    form.reset();
    run();
  });
  return { run: () => run(), signedOut };
}
