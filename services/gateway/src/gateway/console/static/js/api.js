// The gateway's public /v1 API, with the API key from this tab's session storage.

const KEY_NAME = "genai.apiKey";
let authNeeded = () => {};

export class ApiError extends Error {
  constructor(status, message) {
    super(status ? `${status} ${message}` : message);
    this.status = status;
  }
}

export function onAuthNeeded(handler) { authNeeded = handler; }
export function apiKey() { return sessionStorage.getItem(KEY_NAME) || ""; }
export function saveKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function failure(status, body, fallback) {
  const message = (body && body.error && body.error.message) || fallback || "request failed";
  if (status === 401) authNeeded(message);
  return new ApiError(status, message);
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  return failure(response.status, body, response.statusText);
}

async function send(method, path, body, extraHeaders, signal) {
  const init = { method, headers: headers(extraHeaders), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (signal && signal.aborted) throw err;
    throw new ApiError(0, "the gateway cannot be reached");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function request(method, path, body) {
  return (await send(method, path, body)).json();
}

// Server-sent events from a fetch body (EventSource cannot send the Authorization header).
export async function* events(method, path, body, signal) {
  const response = await send(method, path, body, { Accept: "text/event-stream" }, signal);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const lines = (buffer + value).split("\n");
      buffer = lines.pop();
      for (const raw of lines) {
        const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
        if (line === "") {
          if (data.length) yield { event: event || "message", data: data.join("\n") };
          event = "";
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "event") event = text;
          else if (field === "data") data.push(text);
        }
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// Upload with byte progress (fetch has none): XMLHttpRequest, multipart field "file".
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/documents");
    const key = apiKey();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(failure(xhr.status, body, xhr.statusText || "upload failed"));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "the gateway cannot be reached")));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// An image the API serves behind the key, as an object URL an <img> can show.
export async function imageUrl(path) {
  const response = await send("GET", path);
  return URL.createObjectURL(await response.blob());
}
