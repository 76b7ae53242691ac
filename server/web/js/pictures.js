// Pictures of images. Public ones load by URL (the browser caches them). Private ones need
// the key, which an <img src> cannot send: they are fetched with it and shown from blob:
// URLs, which this set frees when its view goes away. A share link's pictures need its token
// (a header, never in the URL), so a set made with one fetches every picture with it.

import { call } from "./api.js";

export class Pictures {
  #urls = [];
  #share;

  constructor(share = null) {
    this.#share = share;
  }

  async show(img, url, image) {
    if (image.visibility === "public" && !this.#share) {
      img.src = url;
      return;
    }
    try {
      img.src = this.keep(await call(url, { as: "blob", share: this.#share }));
    } catch {
      img.classList.add("broken"); // the alt text stays: the title
    }
  }

  keep(blob) {
    const url = URL.createObjectURL(blob);
    this.#urls.push(url);
    return url;
  }

  release() {
    for (const url of this.#urls) URL.revokeObjectURL(url);
    this.#urls = [];
  }
}
