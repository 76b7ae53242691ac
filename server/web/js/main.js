// Wires the page's parts together; each module does one job.

import { setupAccount } from "./account-ui.js";
import { setupBrowse } from "./browse.js";
import { setupImageSearch } from "./by-image.js";
import { setupDetail } from "./detail.js";
import { setupDrops } from "./drops.js";
import { createNotice } from "./notice.js";
import { createQueryBoxes } from "./query-boxes.js";
import { createResults } from "./results.js";
import * as session from "./session.js";
import { setupUpload } from "./upload.js";

const $ = (id) => document.getElementById(id);

const notice = createNotice($("notice"));
let detail = null;
const results = createResults({ list: $("grid"), more: $("more"), title: $("results-title"),
  notice, onOpen: (image) => detail.open(image) });
const browse = setupBrowse({ form: $("search"), newest: $("newest"), results });
detail = setupDetail({ dialog: $("detail"), results, onChanged: () => results.refresh() });

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
