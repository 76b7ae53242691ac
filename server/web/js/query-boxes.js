// Where each result lies in the query photo: an SVG over the preview, one outlined box per
// result matched through a picture region of the query (its corners, in the query's upright
// pixels), numbered as its card. Hovering or focusing a card highlights its box. The overlay
// is decorative (aria-hidden): the card says the same in words.

const SVG = "http://www.w3.org/2000/svg";
const LABEL = 18; // px: the number's badge, kept inside the preview

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

const clamp = (value, low, high) => Math.min(Math.max(value, low), Math.max(low, high));

export function createQueryBoxes({ preview, overlay, grid }) {
  let boxes = []; // {rank, corners}
  let hovered = null;
  let focused = null;

  // The preview is shown upright (EXIF applied), so its natural size is the query's upright
  // size, the corners' frame; the displayed size may be smaller.
  function draw() {
    overlay.replaceChildren();
    const width = preview.clientWidth;
    const height = preview.clientHeight;
    if (!width || !height || !preview.naturalWidth || !preview.naturalHeight) return;
    overlay.setAttribute("width", width);
    overlay.setAttribute("height", height);
    overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const sx = width / preview.naturalWidth;
    const sy = height / preview.naturalHeight;
    for (const { rank, corners } of boxes) {
      const points = corners.map(([x, y]) => [x * sx, y * sy]);
      const group = svg("g", { class: "box", "data-box": rank });
      group.append(svg("polygon", { points: points.map((p) => p.join(",")).join(" ") }));
      const x = clamp(Math.min(...points.map((p) => p[0])), 0, width - LABEL);
      const y = clamp(Math.min(...points.map((p) => p[1])), 0, height - LABEL);
      group.append(svg("rect", { x, y, width: LABEL, height: LABEL, rx: 3 }));
      const label = svg("text", { x: x + LABEL / 2, y: y + LABEL / 2 });
      label.textContent = String(rank);
      group.append(label);
      overlay.append(group);
    }
    highlight();
  }

  function highlight() {
    const active = String(hovered ?? focused ?? "");
    for (const group of overlay.querySelectorAll(".box")) {
      const on = group.dataset.box === active;
      group.classList.toggle("active", on);
      if (on) overlay.append(group); // drawn last: on top of boxes it overlaps
    }
  }

  const boxOf = (target) => target.closest?.("[data-box]")?.dataset.box ?? null;
  grid.addEventListener("pointerover", (event) => { hovered = boxOf(event.target); highlight(); });
  grid.addEventListener("pointerleave", () => { hovered = null; highlight(); });
  grid.addEventListener("focusin", (event) => { focused = boxOf(event.target); highlight(); });
  grid.addEventListener("focusout", () => { focused = null; highlight(); });
  preview.addEventListener("load", draw);
  new ResizeObserver(draw).observe(preview);

  return {
    clear() {
      boxes = [];
      draw();
    },
    // A page of results; ranks count from firstRank, as the cards do.
    add(items, firstRank) {
      items.forEach((item, index) => {
        if (item.matched_by?.query_part === "region" && item.matched_by.corners) {
          boxes.push({ rank: firstRank + index, corners: item.matched_by.corners });
        }
      });
      draw();
    },
  };
}
