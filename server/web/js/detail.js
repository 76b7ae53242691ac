// The detail view: a modal <dialog> (Escape closes it, focus returns to the card) with the
// preview, the metadata, download and "find similar", and for the owner edit, delete, add to
// an album and share links.

import { addToAlbum } from "./album-add.js";
import { call } from "./api.js";
import { el, errorText, formatBytes, formatDate } from "./dom.js";
import { Pictures } from "./pictures.js";
import * as session from "./session.js";
import { sharePanel } from "./shares.js";

const PAGE = 24;

function isOwner(image) {
  const me = session.current();
  return Boolean(me) && me.username.toLowerCase() === image.owner.toLowerCase();
}

function metadata(image) {
  const rows = [
    ["Description", image.description || "—"],
    ["Tags", image.tags.length ? image.tags.join(", ") : "—"],
    ["Owner", image.owner],
    ["Visibility", image.visibility],
    ["Size", `${image.width} × ${image.height} px, ${formatBytes(image.size_bytes)}`],
    ["Type", image.content_type],
    ["File name", image.filename],
    ["Uploaded", formatDate(image.created_at)],
    ["Changed", formatDate(image.updated_at)],
  ];
  return el("dl", { class: "meta" }, ...rows.flatMap(([name, value]) => [
    el("dt", {}, name), el("dd", {}, value)]));
}

// onChanged: an image changed or went; onAlbums: an album got an image.
export function setupDetail({ dialog, results, onChanged, onAlbums = () => {} }) {
  let pictures = new Pictures();

  function close() {
    dialog.close();
  }

  dialog.addEventListener("close", () => {
    pictures.release();
    pictures = new Pictures();
    dialog.replaceChildren();
  });
  // A click on the backdrop (outside the box) closes too.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) close();
  });

  // Public files download by link; a private one needs the key, so it is fetched and
  // offered from a blob: URL.
  function download(image) {
    if (image.visibility === "public") {
      return el("a", { class: "button", href: image.file_url, download: image.filename },
        "Download");
    }
    const status = el("span", { class: "error", role: "alert" });
    const button = el("button", { type: "button", onclick: async () => {
      try {
        const link = el("a", { href: pictures.keep(await call(image.file_url, { as: "blob" })),
          download: image.filename });
        link.click();
      } catch (error) {
        status.textContent = errorText(error);
      }
    } }, "Download");
    return el("span", {}, button, status);
  }

  function findSimilar(image) {
    close();
    return results.show(`Similar to ${image.title || image.filename}`, async (cursor) => {
      const page = await call(`/images/${encodeURIComponent(image.id)}/similar`,
        { query: { limit: PAGE, cursor } });
      return { items: page.results, next_cursor: page.next_cursor };
    });
  }

  function editForm(image, status) {
    const title = el("input", { name: "title", value: image.title, maxlength: 200 });
    const description = el("textarea", { name: "description", rows: 3 });
    description.value = image.description;
    const tags = el("input", { name: "tags", value: image.tags.join(", ") });
    const visibility = el("select", { name: "visibility" },
      ...["private", "public"].map((v) => el("option", { value: v, selected: v === image.visibility }, v)));
    const form = el("form", { class: "edit", hidden: true },
      el("label", {}, "Title ", title),
      el("label", {}, "Description ", description),
      el("label", {}, "Tags ", tags),
      el("label", {}, "Visibility ", visibility),
      el("div", { class: "buttons" },
        el("button", { type: "submit" }, "Save"),
        el("button", { type: "button", onclick: () => { form.hidden = true; } }, "Cancel")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const changes = {
        title: title.value.trim(),
        description: description.value,
        tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
        visibility: visibility.value,
      };
      try {
        const updated = await call(`/images/${encodeURIComponent(image.id)}`,
          { method: "PATCH", json: changes });
        open(updated);
        onChanged();
      } catch (error) {
        status.textContent = errorText(error);
      }
    });
    return form;
  }

  function ownerActions(image, status) {
    const form = editForm(image, status);
    const confirm = el("span", { class: "confirm", hidden: true }, "Delete this image for good? ",
      el("button", { type: "button", class: "danger", onclick: async () => {
        try {
          await call(`/images/${encodeURIComponent(image.id)}`, { method: "DELETE" });
          close();
          onChanged();
        } catch (error) {
          status.textContent = errorText(error);
        }
      } }, "Delete"),
      el("button", { type: "button", onclick: () => { confirm.hidden = true; } }, "Keep"));
    const buttons = [
      el("button", { type: "button", onclick: () => {
        form.hidden = false;
        form.querySelector("input").focus();
      } }, "Edit"),
      el("button", { type: "button", class: "danger", onclick: () => {
        confirm.hidden = false;
        confirm.querySelector("button").focus();
      } }, "Delete…"),
    ];
    const album = addToAlbum(image, status, onAlbums);
    const shares = el("div", { class: "shares", hidden: true });
    buttons.push(album.button, el("button", { type: "button", "aria-expanded": "false",
      onclick: (event) => {
        if (!shares.firstChild) shares.append(sharePanel({ image_id: image.id }));
        shares.hidden = !shares.hidden;
        event.currentTarget.setAttribute("aria-expanded", String(!shares.hidden));
      } }, "Share link…"));
    return { buttons, extra: [form, confirm, album.form, shares] };
  }

  function open(image) {
    pictures.release();
    pictures = new Pictures();
    const name = image.title || image.filename;
    const picture = el("img", { alt: name, class: "preview" });
    pictures.show(picture, image.preview_url, image);
    const status = el("p", { class: "error", role: "alert" });
    const owner = isOwner(image) ? ownerActions(image, status) : { buttons: [], extra: [] };
    const head = el("div", { class: "detail-head" },
      el("h2", { id: "detail-title" }, name),
      el("button", { type: "button", class: "close", "aria-label": "Close", onclick: close },
        "×"));
    const actions = el("div", { class: "buttons" }, download(image),
      el("button", { type: "button", onclick: () => findSimilar(image) }, "Find similar"),
      ...owner.buttons);
    // The actions under the title: a tall picture or a long description cannot push them
    // out of a short window.
    dialog.replaceChildren(el("div", { class: "detail-box" },
      head, actions, ...owner.extra, status, picture, metadata(image)));
    if (!dialog.open) dialog.showModal();
  }

  async function openById(id) {
    open(await call(`/images/${encodeURIComponent(id)}`));
  }

  return { open, openById };
}
