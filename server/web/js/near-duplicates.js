// The pictures already stored that a new upload looks like (its 201 lists them): each one a
// small thumbnail and plain words for how alike they are; a click opens its detail view.

import { call } from "./api.js";
import { el } from "./dom.js";
import { Pictures } from "./pictures.js";

const pictures = new Pictures(); // the upload list's thumbnails, kept while the page is open

// `distance`: pHash bits between the two; 0 on the whole picture is the same picture
// (maybe resized or re-encoded).
function likeness(near) {
  if (near.matched_by.query_part === "region") return "found inside it";
  const same = near.distance === 0 && near.matched_by.signal === "whole";
  return same ? "same picture" : "edited copy";
}

// The answer names the match by id only: its title, owner and thumbnail come from the API.
async function fill(img, button, id) {
  try {
    const image = await call(`/images/${encodeURIComponent(id)}`);
    const name = image.title || image.filename;
    img.alt = name;
    button.title = `${name}, by ${image.owner}`;
    await pictures.show(img, image.thumbnail_url, image);
  } catch {
    img.remove(); // gone or unreadable since: the words stay
  }
}

function item(near, openById) {
  const img = el("img", { alt: "", width: 48, height: 48, decoding: "async" });
  const button = el("button", { type: "button", class: "near-item",
    onclick: () => openById(near.id) }, img, el("span", {}, likeness(near)));
  fill(img, button, near.id);
  return button;
}

export function nearDuplicates(matches, openById) {
  if (!matches.length) return null;
  return el("span", { class: "near" }, el("span", { class: "near-label" }, "Already here:"),
    ...matches.map((near) => item(near, openById)));
}
