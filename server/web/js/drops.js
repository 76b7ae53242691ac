// Files dragged onto the page: dropped on the upload zone (when signed in) they are
// uploaded; anywhere else the first one is searched for.

function carriesFiles(event) {
  return [...(event.dataTransfer?.types ?? [])].includes("Files");
}

export function setupDrops({ zone, onUpload, onSearch }) {
  let depth = 0; // dragenter/dragleave fire for every child crossed

  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    depth += 1;
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) document.body.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // allows the drop
    zone.classList.toggle("over", zone.contains(event.target));
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // else the browser opens the file
    depth = 0;
    document.body.classList.remove("dragging");
    zone.classList.remove("over");
    const files = [...event.dataTransfer.files];
    if (!files.length) return;
    if (zone.contains(event.target) && !zone.closest("[hidden]")) onUpload(files);
    else onSearch(files[0]);
  });
}
