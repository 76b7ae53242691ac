// One line under the search form for what just happened (role=status: read out too).

import { errorText } from "./dom.js";

export function createNotice(node) {
  return {
    say(text) {
      node.classList.remove("error");
      node.textContent = text;
    },
    error(error) {
      node.classList.add("error");
      node.textContent = errorText(error);
    },
    clear() {
      node.classList.remove("error");
      node.textContent = "";
    },
  };
}
