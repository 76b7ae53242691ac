// Building DOM from data. Text from users (titles, tags, names, headlines) goes in as text
// nodes or attribute values only, never through innerHTML, so it cannot become markup.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// A search headline marks matches with literal <mark>…</mark> around text that is NOT
// escaped (PostgreSQL's ts_headline over what users typed): split on the markers and make
// <mark> elements ourselves, every piece as text.
export function headline(text) {
  const fragment = document.createDocumentFragment();
  let marked = false;
  for (const piece of text.split(/(<mark>|<\/mark>)/)) {
    if (piece === "<mark>") marked = true;
    else if (piece === "</mark>") marked = false;
    else if (piece) fragment.append(marked ? el("mark", {}, piece) : piece);
  }
  return fragment;
}

// A name that may wrap after its punctuation (file names most of all: IMG_20240512_103355
// breaks after an underscore), so that it need not break between two letters.
export function breakable(text) {
  const fragment = document.createDocumentFragment();
  text.split(/(?<=[_.,;:=/\\+&)\]}])/).forEach((piece, index) => {
    if (index) fragment.append(el("wbr"));
    fragment.append(piece);
  });
  return fragment;
}

export function formatBytes(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function formatDate(iso) {
  return new Date(iso).toLocaleString();
}

// The API's error, with what its details add: {"title": ["Too long."]} says which field.
// Details that only repeat the message ({"parts": {"file 1 (…)": "…"}}) are left out: each
// thing is said once.
export function errorText(error) {
  const words = (text) => String(text).toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const said = new Set(words(error.message));
  const leaves = [];
  const walk = (value, path) => {
    if (typeof value === "object" && value !== null) {
      for (const [name, inner] of Object.entries(value)) {
        walk(inner, Array.isArray(value) ? path : [...path, name]);
      }
    } else if (!words(value).every((word) => said.has(word))) {
      leaves.push([...path, String(value)].join(": "));
    }
  };
  walk(error.details ?? {}, []);
  const added = [...new Set(leaves)].join("; ");
  return added ? `${error.message} — ${added}` : error.message;
}
