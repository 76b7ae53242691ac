// Uploads: one POST /images per file, so each file has its own progress bar and its own
// error as the API words it; two at a time. A 201 lists the near duplicates already there.

import { upload } from "./api.js";
import { el, errorText } from "./dom.js";
import { nearDuplicates } from "./near-duplicates.js";

const AT_ONCE = 2;

export function setupUpload({ picker, visibility, tags, title, list, openById, onUploaded }) {
  const queue = [];
  let running = 0;

  async function send({ file, row, bar, status }) {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("visibility", visibility.value);
    if (tags.value.trim()) form.append("tags", tags.value.trim());
    if (title.value.trim()) form.append("title", title.value.trim());
    status.textContent = "Uploading…";
    try {
      const answer = await upload(form, (done) => { bar.value = done; });
      const [image] = answer.images;
      bar.value = 1;
      row.classList.add("done");
      status.replaceChildren(
        el("button", { type: "button", class: "link", onclick: () => openById(image.id) },
          "Uploaded"),
        nearDuplicates(image.near_duplicates, openById) ?? "");
    } catch (error) {
      row.classList.add("failed");
      bar.replaceWith(el("span", { class: "outcome" }, "Failed")); // not a full bar
      status.textContent = errorText(error);
    }
  }

  async function pump() {
    while (running < AT_ONCE && queue.length) {
      running += 1;
      send(queue.shift()).finally(() => {
        running -= 1;
        if (!running && !queue.length) onUploaded();
        pump();
      });
    }
  }

  function add(files) {
    for (const file of files) {
      const bar = el("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
      const status = el("span", { class: "status" }, "Waiting…");
      const row = el("li", {}, el("span", { class: "file" }, file.name), bar, status);
      list.prepend(row);
      queue.push({ file, row, bar, status });
    }
    pump();
  }

  picker.addEventListener("change", () => {
    add([...picker.files]);
    picker.value = "";
  });
  return { add };
}
