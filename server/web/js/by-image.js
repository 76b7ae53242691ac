// Search by image: a dropped, pasted or chosen photo goes to POST /search/image and nowhere
// else (the API compares it and keeps nothing); results come nearest first.

import { call } from "./api.js";

const PAGE = 24;

export function setupImageSearch({ picker, orientations, figure, preview, caption, results,
  boxes }) {
  let file = null;
  let previewUrl = null;

  function run() {
    if (!file) return Promise.resolve();
    const query = file;
    const all = orientations.checked;
    const name = query.name || "the pasted image";
    return results.show(`Similar to ${name}`, async (cursor) => {
      const form = new FormData();
      form.append("file", query, query.name || "pasted-image");
      form.append("orientations", all ? "all" : "none");
      form.append("limit", String(PAGE));
      if (cursor) form.append("cursor", cursor);
      const page = await call("/search/image", { method: "POST", form });
      return { items: page.results, next_cursor: page.next_cursor };
    }, { onEnter: () => enter(query), onPage: boxes.add, onLeave: leave });
  }

  function enter(query) {
    file = query;
    figure.hidden = false;
  }

  // Other results replace these: the photo goes with them (no query photo above "Newest
  // images"), and the orientations toggle waits for the next one.
  function leave() {
    file = null;
    boxes.clear();
    figure.hidden = true;
  }

  function search(newFile) {
    file = newFile;
    // The preview is a local blob: URL; the photo leaves the page only for the search.
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    const name = file.name || "Pasted image";
    caption.textContent = name;
    // A HEIC or a RAW is searched like any photo, but few browsers can show one: say so
    // instead of a broken picture.
    preview.hidden = false;
    preview.onerror = () => {
      preview.hidden = true;
      caption.textContent = `${name}: this browser cannot show this photo; its results are below`;
    };
    preview.src = previewUrl;
    return run().then(results.reveal);
  }

  picker.addEventListener("change", () => {
    if (picker.files.length) search(picker.files[0]);
    picker.value = "";
  });
  orientations.addEventListener("change", run);
  document.addEventListener("paste", (event) => {
    const pasted = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
    if (!pasted) return; // text pastes into the fields as usual
    event.preventDefault();
    search(pasted);
  });
  return { search };
}
