// Documents: drag-and-drop upload with per-file progress, live status until indexed or failed, delete.

import { request, upload } from "./api.js";
import { count, el, shorten } from "./dom.js";

const FINAL = new Set(["indexed", "failed"]);
const UPLOADS_AT_ONCE = 3;
const POLL_MS = 1000;

export function setupDocuments(showError) {
  const list = document.getElementById("document-list");
  const empty = document.getElementById("documents-empty");
  const dropzone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const uploads = [];      // this tab's uploads: { key, file, fraction, error, id }
  let waiting = [];
  let running = 0;
  let documents = [];
  let timer = null;
  let counter = 0;

  input.addEventListener("change", () => { add(input.files); input.value = ""; });
  dropzone.addEventListener("dragover", (e) => { e.preventDefault(); dropzone.classList.add("over"); });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    dropzone.classList.remove("over");
    add(e.dataTransfer.files);
  });
  document.getElementById("documents-refresh").addEventListener("click", () => refresh());

  function add(files) {
    for (const file of files) {
      const item = { key: `upload-${++counter}`, file, fraction: 0, error: "", id: null };
      uploads.unshift(item);
      waiting.push(item);
    }
    pump();
    render();
  }

  function pump() {
    while (running < UPLOADS_AT_ONCE && waiting.length) {
      const item = waiting.shift();
      running += 1;
      send(item).finally(() => { running -= 1; pump(); });
    }
  }

  async function send(item) {
    try {
      const doc = await upload(item.file, (fraction) => { item.fraction = fraction; render(); });
      item.id = doc.id;
      documents = [doc, ...documents.filter((d) => d.id !== doc.id)];
      later();
    } catch (err) {
      item.error = err.message;
    }
    render();
  }

  async function refresh() {
    clearTimeout(timer);
    timer = null;
    try {
      documents = (await request("GET", "/v1/documents?limit=100")).data;
    } catch (err) {
      showError(err);
      return;
    }
    render();
    if (documents.some((d) => !FINAL.has(d.status))) later();
  }

  function later() {
    if (!timer) timer = setTimeout(refresh, POLL_MS);
  }

  async function remove(doc) {
    if (!confirm(`Delete ${doc.name}? Its passages leave the search index too.`)) return;
    try {
      await request("DELETE", `/v1/documents/${encodeURIComponent(doc.id)}`);
      documents = documents.filter((d) => d.id !== doc.id);
      render();
    } catch (err) {
      showError(err);
    }
  }

  function render() {
    const sending = uploads.filter((u) => !u.id);
    list.replaceChildren(...sending.map(uploadCard), ...documents.map((d) => documentCard(d, remove)));
    empty.hidden = list.children.length > 0;
  }

  function uploadCard(item) {
    const status = item.error ? `failed: ${item.error}` : item.fraction < 1 ? "uploading" : "sent";
    return el("li", { class: `card document ${item.error ? "failed" : ""}`, "data-name": item.file.name },
      el("div", { class: "row" }, el("strong", { class: "name", text: item.file.name }), el("span", { class: "grow" }),
         item.error ? el("button", { type: "button", class: "quiet", text: "Dismiss", onclick: () => {
           uploads.splice(uploads.indexOf(item), 1);
           render();
         } }) : null),
      el("progress", { max: 100, value: Math.round(item.fraction * 100) }),
      el("p", { class: "status", text: status }));
  }

  return { refresh };
}

function documentCard(doc, remove) {
  const facts = [doc.pages ? count(doc.pages, "page") : "", doc.chunks ? count(doc.chunks, "passage") : "",
                 doc.status === "processing" && doc.stage ? doc.stage : ""].filter(Boolean).join(" · ");
  return el("li", { class: `card document ${doc.status}`, "data-id": doc.id, "data-name": doc.name },
    el("div", { class: "row" },
      el("strong", { class: "name", text: doc.name, title: doc.name }), el("span", { class: "grow" }),
      el("span", { class: `badge ${doc.status}`, text: doc.status }),
      el("button", { type: "button", class: "quiet", text: "Delete", onclick: () => remove(doc) })),
    FINAL.has(doc.status) ? null : el("progress", { max: 100, value: doc.progress || 0 }),
    el("p", { class: "status", text: facts }),
    doc.reason ? el("p", { class: "error", text: shorten(doc.reason, 400) }) : null);
}
