// One album in the grid, in its order: a bar above it says whose it is, searches in it, and
// for its owner renames it, makes it public or private, shares it or deletes it; each card
// gets buttons to move it (up, down, to the front) or take it out of the album.

import { call } from "./api.js";
import { el, errorText } from "./dom.js";
import * as session from "./session.js";
import { sharePanel } from "./shares.js";

const PAGE = 24;

const path = (album, rest = "") => `/albums/${encodeURIComponent(album.id)}${rest}`;

function isOwner(album) {
  const me = session.current();
  return Boolean(me) && me.username.toLowerCase() === album.owner.toLowerCase();
}

export function setupAlbumView({ bar, results, notice, onChanged, onGone }) {
  let album = null;
  let items = []; // the album's images shown, in order

  function heading() {
    return `Album: ${album.title}`;
  }

  function count() {
    return `${album.image_count} image${album.image_count === 1 ? "" : "s"}`;
  }

  // Moves `image` before `before` (null: to the end), then shows the album again with the
  // focus back on the same button of the moved card.
  async function move(image, before, said, button) {
    try {
      await call(path(album, "/images"), { method: "POST",
        json: { image_ids: [image.id], before } });
      await results.refresh();
      notice.say(said);
      const moved = bar.ownerDocument.querySelector(`[data-image="${CSS.escape(image.id)}"]`);
      const again = moved?.querySelector(`[data-move="${button}"]:not([disabled])`)
        ?? moved?.querySelector("button:not([disabled])");
      again?.focus();
    } catch (error) {
      notice.error(error);
    }
  }

  function controls(image, rank) {
    if (!isOwner(album)) return null;
    const name = image.title || image.filename;
    const at = () => items.findIndex((item) => item.id === image.id);
    const button = (label, key, text, action, disabled) => el("button", { type: "button",
      "data-move": key, "aria-label": `${label}: ${name}`, title: label, disabled,
      onclick: action }, text);
    const last = rank >= album.image_count;
    return el("div", { class: "card-controls", "data-image": image.id },
      button("Move up", "up", "↑", () => {
        const index = at();
        if (index > 0) move(image, items[index - 1].id, `Moved ${name} up.`, "up");
      }, rank === 1),
      button("Move down", "down", "↓", () => {
        const index = at();
        if (index + 2 < items.length) move(image, items[index + 2].id, `Moved ${name} down.`, "down");
        else if (index + 2 >= album.image_count) move(image, null, `Moved ${name} down.`, "down");
        else notice.say("Show more of the album to move it further.");
      }, last),
      button("Move to the front", "front", "⇤", () => {
        if (items[0] && items[0].id !== image.id) {
          move(image, items[0].id, `Moved ${name} to the front.`, "front");
        }
      }, rank === 1),
      button("Remove from the album", "remove", "Remove", async () => {
        try {
          await call(path(album, "/images/remove"), { method: "POST",
            json: { image_ids: [image.id] } });
          await results.refresh();
          notice.say(`Took ${name} out of the album; the image itself is kept.`);
          onChanged();
        } catch (error) {
          notice.error(error);
        }
      }));
  }

  function editForm(status) {
    const title = el("input", { name: "title", value: album.title, maxlength: 200, required: true });
    const description = el("textarea", { name: "description", rows: 2 });
    description.value = album.description ?? "";
    const visibility = el("select", { name: "visibility" }, ...["private", "public"].map(
      (v) => el("option", { value: v, selected: v === album.visibility }, v)));
    const form = el("form", { class: "edit", hidden: true },
      el("label", {}, "Album title ", title),
      el("label", {}, "Album description ", description),
      el("label", {}, "Album visibility ", visibility),
      el("div", { class: "buttons" },
        el("button", { type: "submit" }, "Save album"),
        el("button", { type: "button", onclick: () => { form.hidden = true; } }, "Cancel")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        album = await call(path(album), { method: "PATCH", json: {
          title: title.value.trim(), description: description.value,
          visibility: visibility.value } });
        onChanged();
        await open(album);
        notice.say("Album saved.");
      } catch (error) {
        status.textContent = errorText(error);
      }
    });
    return form;
  }

  function ownerTools(status) {
    const form = editForm(status);
    const shares = el("div", { class: "shares", hidden: true });
    const confirm = el("span", { class: "confirm", hidden: true },
      "Delete this album? Its images are kept; only the album and its links go. ",
      el("button", { type: "button", class: "danger", onclick: async () => {
        try {
          await call(path(album), { method: "DELETE" });
          onChanged();
          notice.say(`Album “${album.title}” deleted; its images are kept.`);
          onGone();
        } catch (error) {
          status.textContent = errorText(error);
        }
      } }, "Delete album"),
      el("button", { type: "button", onclick: () => { confirm.hidden = true; } }, "Keep"));
    const buttons = el("div", { class: "buttons" },
      el("button", { type: "button", onclick: () => {
        form.hidden = false;
        form.querySelector("input").focus();
      } }, "Edit album"),
      el("button", { type: "button", "aria-expanded": "false", onclick: (event) => {
        if (!shares.firstChild) shares.append(sharePanel({ album_id: album.id }));
        shares.hidden = !shares.hidden;
        event.currentTarget.setAttribute("aria-expanded", String(!shares.hidden));
      } }, "Share link…"),
      el("button", { type: "button", class: "danger", onclick: () => {
        confirm.hidden = false;
        confirm.querySelector("button").focus();
      } }, "Delete album…"));
    return [buttons, form, confirm, shares];
  }

  function searchForm() {
    const words = el("input", { type: "search", name: "q", maxlength: 1000 });
    const form = el("form", { class: "album-search", role: "search" },
      el("label", {}, "Search in this album ", words),
      el("button", { type: "submit" }, "Search in album"),
      el("button", { type: "button", onclick: () => { words.value = ""; open(album); } },
        "Whole album"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const q = words.value.trim();
      if (!q) return open(album);
      return results.show(`${heading()} — ${q}`, async (cursor) => {
        const page = await call("/search", { query: { q, album: album.id, limit: PAGE, cursor } });
        return { items: page.results, next_cursor: page.next_cursor };
      }, { onEnter: () => { bar.hidden = false; }, onLeave: () => { bar.hidden = true; } });
    });
    return form;
  }

  function render() {
    const status = el("p", { class: "error", role: "alert" });
    const facts = [`by ${album.owner}`, count(), album.visibility];
    bar.replaceChildren(el("p", { class: "facts" }, facts.join(" · ")));
    if (album.description) bar.append(el("p", { class: "description" }, album.description));
    bar.append(...(isOwner(album) ? ownerTools(status) : []), searchForm(), status);
    bar.hidden = false;
  }

  // Each first page asks for the album again: its count (which the move buttons rely on) and
  // its owner's controls are as they are now.
  function open(chosen) {
    album = chosen;
    return results.show(heading(), async (cursor) => {
      if (!cursor) {
        album = await call(path(album));
        render();
      }
      const page = await call(path(album, "/images"), { query: { limit: PAGE, cursor } });
      return { items: page.images, next_cursor: page.next_cursor };
    }, {
      onEnter: () => { items = []; },
      onPage: (page) => items.push(...page),
      onLeave: () => { bar.hidden = true; },
      controls,
    });
  }

  return { open };
}
