// Share links of one of your images or albums: make one (how long it lives, whether it lets
// the visitor download), see its address once (the server keeps only a digest of its token),
// list the links made, and revoke one.

import { call } from "./api.js";
import { el, errorText, formatDate } from "./dom.js";

const DAY = 24 * 60 * 60;
const EXPIRIES = [["never", ""], ["in 1 day", DAY], ["in 7 days", 7 * DAY],
  ["in 30 days", 30 * DAY]];

let panels = 0; // each panel's ids are its own

// The page's address for a token: the token in the fragment, which never reaches a server.
export function linkFor(created) {
  return new URL(created.url ?? `/#share=${created.token}`, location.origin).href;
}

function describe(share) {
  const parts = [share.prefix + "…"];
  if (share.expired) parts.push("expired");
  else parts.push(share.expires_at ? `expires ${formatDate(share.expires_at)}` : "never expires");
  parts.push(share.last_used_at ? `last used ${formatDate(share.last_used_at)}` : "never used");
  if (share.allow_download) parts.push("download allowed");
  return parts.join(" · ");
}

// target: { image_id } or { album_id }. A <section> to put in a dialog or a toolbar.
export function sharePanel(target) {
  panels += 1;
  const id = `share-panel-${panels}`;
  const status = el("p", { class: "error", role: "alert" });
  const list = el("ul", { class: "share-list" });
  const created = el("div", { class: "share-created", hidden: true });
  const expiry = el("select", { name: "expires" },
    ...EXPIRIES.map(([label, seconds]) => el("option", { value: seconds }, label)));
  const download = el("input", { type: "checkbox", name: "allow_download" });
  const form = el("form", { class: "share-form" },
    el("label", {}, "Expires ", expiry),
    el("label", { class: "check" }, download, " Allow download"),
    el("button", { type: "submit" }, "Create link"));

  async function refresh() {
    try {
      const { shares } = await call("/shares", { query: target });
      list.replaceChildren(...shares.map(row));
      if (!shares.length) list.append(el("li", { class: "empty" }, "No links yet."));
    } catch (error) {
      status.textContent = errorText(error);
    }
  }

  function row(share) {
    const revoke = el("button", { type: "button", class: "danger",
      "aria-label": `Revoke link ${share.prefix}`, onclick: async () => {
        try {
          await call(`/shares/${encodeURIComponent(share.id)}`, { method: "DELETE" });
          status.textContent = "";
          await refresh();
          form.querySelector("button").focus();
        } catch (error) {
          status.textContent = errorText(error);
        }
      } }, "Revoke");
    return el("li", { "data-share": share.id }, el("span", {}, describe(share)), revoke);
  }

  function reveal(share) {
    const address = el("input", { readonly: true, value: linkFor(share), class: "share-url",
      "aria-describedby": `${id}-once` });
    const said = el("span", { role: "status" });
    const copy = el("button", { type: "button", onclick: async () => {
      address.select();
      try {
        await navigator.clipboard.writeText(address.value);
        said.textContent = "Copied.";
      } catch {
        said.textContent = "Select the address and copy it.";
      }
    } }, "Copy");
    created.replaceChildren(
      el("label", {}, "Link ", address),
      el("div", { class: "buttons" }, copy, said),
      el("p", { id: `${id}-once`, class: "once" },
        "This address is shown only once: copy it now. Anyone with it can see what it shows, ",
        "without an account, until it expires or you revoke it."));
    created.hidden = false;
    address.focus();
    address.select();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { allow_download: download.checked };
    if (expiry.value) body.expires_in_seconds = Number(expiry.value);
    const [kind, id] = target.image_id ? ["images", target.image_id] : ["albums", target.album_id];
    try {
      const share = await call(`/${kind}/${encodeURIComponent(id)}/shares`,
        { method: "POST", json: body });
      status.textContent = "";
      reveal(share);
      await refresh();
    } catch (error) {
      status.textContent = errorText(error);
    }
  });

  refresh();
  return el("section", { class: "share-panel", "aria-labelledby": `${id}-title` },
    el("h3", { id: `${id}-title` }, "Share links"), form, created, status,
    el("h4", {}, "Links made"), list);
}
