// What a share link shows, to anyone who opens /#share=TOKEN, with or without an account:
// one image, or an album's images in its order, each openable. Every request carries the token
// in the X-Share-Token header (api.js), never in its URL, and no key. A link revoked or
// expired says so.

import { call } from "./api.js";
import { el, errorText, formatDate } from "./dom.js";
import { Pictures } from "./pictures.js";

const PAGE = 24;

// The token in the address's fragment (#share=irs_…), or null.
export function shareToken(hash = location.hash) {
  const match = /^#share=([^&]+)/.exec(hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}

const fileUrl = (image) => image.file_url ?? `/shared/images/${encodeURIComponent(image.id)}/file`;

// An image as the link shows it: the picture, its words, whose it is, and a download button
// only if the link allows downloads.
function imageView({ image, link, token, pictures, headingId, status }) {
  const name = image.title || image.filename;
  const picture = el("img", { alt: name, class: "preview" });
  pictures.show(picture, image.preview_url ?? image.thumbnail_url, image);
  const rows = [["Owner", image.owner]];
  if (image.description) rows.unshift(["Description", image.description]);
  if (image.width) rows.push(["Size", `${image.width} × ${image.height} px`]);
  const actions = el("div", { class: "buttons" });
  if (link.allow_download) {
    actions.append(el("button", { type: "button", onclick: async () => {
      try {
        const blob = await call(fileUrl(image), { as: "blob", share: token });
        el("a", { href: pictures.keep(blob), download: image.filename || "image" }).click();
      } catch (error) {
        status.textContent = errorText(error);
      }
    } }, "Download"));
  }
  return [el("h2", { id: headingId, class: "shared-title" }, name), actions, picture,
    el("dl", { class: "meta" }, ...rows.flatMap(([term, value]) => [
      el("dt", {}, term), el("dd", {}, value)]))];
}

// grid: the results' heading and list, shown for an album link only.
export function setupSharedView({ token, section, grid, results, dialog, notice }) {
  const pictures = new Pictures(token);
  let link = null;

  function gone() {
    section.replaceChildren(
      el("h2", { id: "shared-title" }, "This link was revoked or has expired"),
      el("p", { role: "alert" }, "Whoever shared it can send you a new one."));
  }

  function expiry() {
    return link.expires_at ? `This link works until ${formatDate(link.expires_at)}.` : "";
  }

  // An album's image, opened from the grid, in the detail dialog.
  let dialogPictures = new Pictures(token);
  dialog.addEventListener("close", () => {
    dialogPictures.release();
    dialogPictures = new Pictures(token);
    dialog.replaceChildren();
  });
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  function openImage(image) {
    const status = el("p", { class: "error", role: "alert" });
    const [title, ...rest] = imageView({ image, link, token, pictures: dialogPictures,
      headingId: "detail-title", status });
    dialog.replaceChildren(el("div", { class: "detail-box" },
      el("div", { class: "detail-head" }, title,
        el("button", { type: "button", class: "close", "aria-label": "Close",
          onclick: () => dialog.close() }, "×")),
      ...rest, status));
    if (!dialog.open) dialog.showModal();
  }

  function showImage() {
    const status = el("p", { class: "error", role: "alert" });
    const [title, ...rest] = imageView({ image: link.image, link, token, pictures,
      headingId: "shared-title", status });
    section.replaceChildren(title,
      el("p", { class: "shared-note" }, `Shared with you by ${link.owner}. ${expiry()}`),
      ...rest, status);
  }

  function wholeAlbum() {
    return results.show("Images in this album", async (cursor) => {
      const page = await call("/shared/images", { share: token, query: { limit: PAGE, cursor } });
      return { items: page.images, next_cursor: page.next_cursor };
    });
  }

  // Text search among the link's images only (GET /shared/search).
  function searchForm() {
    const words = el("input", { type: "search", name: "q", maxlength: 1000 });
    const form = el("form", { class: "album-search", role: "search" },
      el("label", {}, "Search in this album ", words),
      el("button", { type: "submit" }, "Search in album"),
      el("button", { type: "button", onclick: () => { words.value = ""; wholeAlbum(); } },
        "Whole album"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const q = words.value.trim();
      if (!q) return wholeAlbum();
      return results.show(`Images in this album — ${q}`, async (cursor) => {
        const page = await call("/shared/search",
          { share: token, query: { q, limit: PAGE, cursor } });
        return { items: page.results, next_cursor: page.next_cursor };
      });
    });
    return form;
  }

  function showAlbum() {
    const album = link.album;
    section.replaceChildren(
      el("h2", { id: "shared-title", class: "shared-title" }, album.title),
      el("p", { class: "shared-note" }, `An album shared with you by ${link.owner}. ${expiry()}`));
    if (album.description) section.append(el("p", { class: "description" }, album.description));
    section.append(searchForm());
    for (const part of grid) part.hidden = false;
    return wholeAlbum();
  }

  async function start() {
    section.hidden = false;
    section.replaceChildren(el("p", {}, "Opening the link…"));
    try {
      link = await call("/shared", { share: token });
    } catch (error) {
      if (error.status === 404 || error.status === 401) gone();
      else {
        section.replaceChildren(el("h2", { id: "shared-title" }, "The link could not be opened"));
        notice.error(error);
      }
      return;
    }
    document.title = `${link.album?.title ?? link.image?.title ?? "Shared"} — imagerepo`;
    if (link.kind === "album") await showAlbum();
    else showImage();
  }

  return { start, openImage };
}
