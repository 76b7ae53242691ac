// The header's account controls and the sign-in dialog.

import { errorText } from "./dom.js";
import { signIn, signOut, signUp } from "./account.js";
import * as session from "./session.js";

export function setupAccount({ who, openButton, signOutButton, dialog, notice }) {
  const form = dialog.querySelector("form");
  const error = dialog.querySelector("#auth-error");

  function render() {
    const me = session.current();
    who.hidden = !me;
    who.textContent = me ? `Signed in as ${me.username}` : "";
    openButton.hidden = Boolean(me);
    signOutButton.hidden = !me;
  }

  async function attempt(action) {
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    if (!username || !password) {
      error.textContent = "Enter a username and a password.";
      return;
    }
    error.textContent = "";
    try {
      await action(username, password);
      form.reset();
      dialog.close();
    } catch (failure) {
      error.textContent = errorText(failure);
    }
  }

  openButton.addEventListener("click", () => {
    error.textContent = "";
    dialog.showModal();
  });
  dialog.querySelector(".close").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(signIn);
  });
  dialog.querySelector("#sign-up").addEventListener("click", () => attempt(signUp));
  signOutButton.addEventListener("click", async () => {
    try {
      await signOut();
      notice.say("Signed out; the key is revoked.");
    } catch (failure) {
      notice.error(failure);
    }
  });
  session.onChange((reason) => {
    render();
    if (reason === "expired") notice.say("The key was refused (revoked?): sign in again.");
    else if (reason === "signed-in") notice.clear();
  });
  render();
}
