// "Add to album" in the detail view of one's own image: pick one of one's albums, and the
// image goes at its end (already in it: moved to the end).

import { call } from "./api.js";
import { el, errorText } from "./dom.js";

// Every album of the signed-in user, following the cursor (a few pages at most).
export async function myAlbums() {
  const albums = [];
  let cursor = null;
  do {
    const page = await call("/albums", { query: { owner: "me", limit: 100, cursor } });
    albums.push(...page.albums);
    cursor = page.next_cursor;
  } while (cursor && albums.length < 1000);
  return albums;
}

export function addToAlbum(image, status, onAdded = () => {}) {
  const choice = el("select", { name: "album" });
  const said = el("span", { role: "status" });
  const form = el("form", { class: "add-to-album", hidden: true },
    el("label", {}, "Album ", choice),
    el("div", { class: "buttons" },
      el("button", { type: "submit" }, "Add"),
      el("button", { type: "button", onclick: () => { form.hidden = true; } }, "Cancel")),
    said);

  async function fill() {
    said.textContent = "";
    const albums = await myAlbums();
    choice.replaceChildren(...albums.map((album) => el("option", { value: album.id },
      album.title)));
    form.querySelector("button[type=submit]").disabled = !albums.length;
    if (!albums.length) said.textContent = "No albums yet: make one under Albums.";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const title = choice.selectedOptions[0]?.textContent;
    try {
      const answer = await call(`/albums/${encodeURIComponent(choice.value)}/images`,
        { method: "POST", json: { image_ids: [image.id] } });
      said.textContent = answer.moved.length ? `Moved to the end of ${title}.`
        : `Added to ${title}.`;
      status.textContent = "";
      onAdded();
    } catch (error) {
      status.textContent = errorText(error);
    }
  });

  const button = el("button", { type: "button", onclick: async () => {
    form.hidden = false;
    try {
      await fill();
      choice.focus();
    } catch (error) {
      status.textContent = errorText(error);
    }
  } }, "Add to album…");
  return { button, form };
}
