// Browsing and text search: the form's fields become GET /images (no words) or GET /search
// (words, in the API's web-search syntax) with the same filters.

import { call } from "./api.js";

const PAGE = 24;

export function setupBrowse({ form, newest, results }) {
  function fields() {
    const data = new FormData(form);
    const value = (name) => String(data.get(name) ?? "").trim();
    return { q: value("q"), owner: value("owner"), tag: value("tag"),
      visibility: value("visibility") };
  }

  function run() {
    const { q, ...filters } = fields();
    if (q) {
      return results.show(`Search: ${q}`, async (cursor) => {
        const page = await call("/search", { query: { q, ...filters, limit: PAGE, cursor } });
        return { items: page.results, next_cursor: page.next_cursor };
      });
    }
    const narrowed = Object.values(filters).some(Boolean);
    return results.show(narrowed ? "Images, filtered" : "Newest images", async (cursor) => {
      const page = await call("/images", { query: { ...filters, limit: PAGE, cursor } });
      return { items: page.images, next_cursor: page.next_cursor };
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  newest.addEventListener("click", () => {
    form.reset();
    run();
  });
  return { run };
}
