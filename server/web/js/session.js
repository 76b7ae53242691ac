// Who is signed in, kept in sessionStorage: this tab only, gone when the tab closes, and
// never sent by the browser on its own (unlike a cookie), so no other site can use it.

const STORE = "imagerepo.session";
const listeners = new Set();

export function current() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE));
  } catch {
    return null; // storage disabled or a stale value: nobody signed in
  }
}

export function key() {
  return current()?.key ?? null;
}

export function start(value) {
  sessionStorage.setItem(STORE, JSON.stringify(value));
  notify("signed-in");
}

export function end(reason = "signed-out") {
  sessionStorage.removeItem(STORE);
  notify(reason);
}

// The API refused the key (revoked elsewhere, or the account is gone).
export function expire() {
  if (current()) end("expired");
}

export function onChange(listener) {
  listeners.add(listener);
}

function notify(reason) {
  for (const listener of listeners) listener(reason);
}
