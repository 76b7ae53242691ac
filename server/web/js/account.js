// Signing up, in and out through the API. The page holds one API key per tab; signing out
// revokes it on the server (DELETE /keys/{id}), so a copy of it is worthless afterwards.

import { basicAuth, call } from "./api.js";
import * as session from "./session.js";

const KEY_NAME = "web page";
// What the page does with its key, and no more (issue 26): it shows, searches and finds
// images and albums (read), uploads images (upload), changes and deletes them and keeps
// albums (write), revokes its own key at sign-out (keys), and makes and revokes share links
// (share).
export const KEY_SCOPES = ["read", "upload", "write", "keys", "share"];

const bearer = (key) => `Bearer ${key}`;

// The sign-up answer holds the key but not its id, which revoking needs: the key's prefix
// (its first characters) tells it apart among the account's keys.
async function keyIdOf(apiKey) {
  const { keys } = await call("/keys", { authorization: bearer(apiKey) });
  const mine = keys.filter((k) => !k.revoked_at && apiKey.startsWith(k.prefix));
  mine.sort((a, b) => b.created_at.localeCompare(a.created_at));
  return mine[0]?.id ?? null;
}

export async function signUp(username, password) {
  const user = await call("/users", { method: "POST", json: { username, password } });
  const id = await keyIdOf(user.api_key);
  session.start({ key: user.api_key, id, username: user.username });
}

export async function signIn(username, password) {
  const created = await call("/keys", { method: "POST", json: { name: KEY_NAME, scopes: KEY_SCOPES },
    authorization: basicAuth(username, password) });
  const me = await call("/users/me", { authorization: bearer(created.api_key) });
  session.start({ key: created.api_key, id: created.id, username: me.username });
}

export async function signOut() {
  const me = session.current();
  if (!me) return;
  try {
    const id = me.id ?? (await keyIdOf(me.key));
    if (id) await call(`/keys/${encodeURIComponent(id)}`, { method: "DELETE" });
  } finally {
    session.end(); // forgotten here even if the server could not be told
  }
}
