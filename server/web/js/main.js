// Wires the page's parts together; each module does one job. An address with #share=TOKEN
// is a share link's visitor view: only what the link shows, none of the signed-in controls.

import { setupAccount } from "./account-ui.js";
import { setupAlbumView } from "./album-view.js";
import { setupAlbums } from "./albums.js";
import { setupBrowse } from "./browse.js";
import { setupImageSearch } from "./by-image.js";
import { setupDetail } from "./detail.js";
import { setupDrops } from "./drops.js";
import { createNotice } from "./notice.js";
import { createQueryBoxes } from "./query-boxes.js";
import { createResults } from "./results.js";
import * as session from "./session.js";
import { setupSharedView, shareToken } from "./shared-view.js";
import { setupUpload } from "./upload.js";

const $ = (id) => document.getElementById(id);

const notice = createNotice($("notice"));
const token = shareToken();

// Another link, or none, typed into the address bar: the page starts again for it.
window.addEventListener("hashchange", () => {
  if (shareToken() !== token) location.reload();
});

function visit() {
  for (const part of document.querySelectorAll(".app-only")) part.hidden = true;
  const grid = [$("results-title"), $("grid")]; // an album link's images only
  for (const part of grid) part.hidden = true;
  let view = null;
  const results = createResults({ list: $("grid"), more: $("more"), title: $("results-title"),
    notice, share: token, onOpen: (image) => view.openImage(image) });
  view = setupSharedView({ token, section: $("shared"), grid, results, dialog: $("detail"),
    notice });
  view.start();
}

function app() {
  let detail = null;
  const results = createResults({ list: $("grid"), more: $("more"), title: $("results-title"),
    notice, onOpen: (image) => detail.open(image) });
  const browse = setupBrowse({ form: $("search"), newest: $("newest"), results });
  let albums = null;
  const albumView = setupAlbumView({ bar: $("album-bar"), results, notice,
    onChanged: () => albums.reload(), onGone: () => browse.run() });
  albums = setupAlbums({ section: $("albums"), list: $("album-list"), more: $("albums-more"),
    form: $("album-new"), error: $("albums-error"), onOpen: albumView.open });
  detail = setupDetail({ dialog: $("detail"), results, onChanged: () => results.refresh(),
    onAlbums: () => albums.reload() });

  const openById = (id) => detail.openById(id).catch((error) => notice.error(error));
  const imageSearch = setupImageSearch({ picker: $("query-file"), orientations: $("orientations"),
    figure: $("query"), preview: $("query-img"), caption: $("query-name"), results,
    boxes: createQueryBoxes({ preview: $("query-img"), overlay: $("query-boxes"), grid: $("grid") }) });
  const uploads = setupUpload({ picker: $("upload-files"), visibility: $("upload-visibility"),
    tags: $("upload-tags"), title: $("upload-title"), list: $("uploads"), openById,
    onUploaded: () => browse.run() });
  setupDrops({ zone: $("upload-zone"), onUpload: uploads.add, onSearch: imageSearch.search });

  setupAccount({ who: $("who"), openButton: $("sign-in-open"), signOutButton: $("sign-out"),
    dialog: $("auth-dialog"), notice });

  function showUpload() {
    $("upload").hidden = !session.current();
  }
  session.onChange(() => {
    showUpload();
    if (session.current() || !browse.signedOut()) results.refresh(); // one's private images
  });
  showUpload();
  browse.run();
}

if (token) visit();
else app();
