// The JSON API, on this origin. Every call goes through here: the key, the error envelope
// ({"error": {"code", "message", "details"}}) and what a refused key means. A share link's
// token goes in its own header, never in a URL (URLs are logged), and a request made with it
// carries no key: /shared/* answers for the link alone.

import * as session from "./session.js";

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const error = body?.error ?? {};
    super(error.message ?? fallback ?? `The server answered ${status}`);
    this.status = status;
    this.code = error.code ?? "http_error";
    this.details = error.details ?? {};
  }
}

export function basicAuth(username, password) {
  // btoa takes Latin-1 only: send the UTF-8 bytes (the API reads Basic as UTF-8).
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

const SHARED = /^\/shared(\/|$)/;

function headers(accept, authorization, share, path = "") {
  const result = { Accept: accept };
  if (share) {
    result["X-Share-Token"] = share;
    return result;
  }
  if (SHARED.test(path)) return result; // never the signed-in key to a link's routes
  const key = session.key();
  if (authorization) result.Authorization = authorization;
  else if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

export function url(path, query = {}) {
  const result = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") {
      result.searchParams.set(name, value);
    }
  }
  return result;
}

// options: method, query, json (a body), form (FormData), authorization (instead of the
// key), share (a share link's token, instead of the key), as ("json" or "blob").
export async function call(path, options = {}) {
  const { method = "GET", query, json, form, authorization, share, as = "json" } = options;
  const accept = as === "json" ? "application/json" : "image/webp,image/*;q=0.9,*/*;q=0.8";
  const sent = headers(accept, authorization, share, new URL(path, location.origin).pathname);
  let body = form;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    // credentials "omit": no cookies are involved, and a 401 to a wrong password must not
    // open the browser's own login prompt.
    response = await fetch(url(path, query), { method, headers: sent, body, credentials: "omit" });
  } catch {
    throw new ApiError(0, null, "The server could not be reached");
  }
  if (!response.ok) throw await failure(response, sent.Authorization?.startsWith("Bearer"));
  if (response.status === 204) return null;
  return as === "blob" ? response.blob() : response.json();
}

async function failure(response, sentKey) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not the envelope (a proxy's error page): the status says enough
  }
  if (response.status === 401 && sentKey) session.expire();
  return new ApiError(response.status, body);
}

// POST /images with XMLHttpRequest: fetch() reports no upload progress.
export function upload(form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/images");
    const sent = headers("application/json");
    for (const [name, value] of Object.entries(sent)) request.setRequestHeader(name, value);
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      if (request.status === 201) return resolve(request.response);
      if (request.status === 401 && sent.Authorization) session.expire();
      reject(new ApiError(request.status, request.response));
    });
    request.addEventListener("error", () => {
      reject(new ApiError(0, null, "The upload failed: the connection was lost"));
    });
    request.send(form);
  });
}
