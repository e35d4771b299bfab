// The console's entry point: sections, the API key dialog, errors, and the first loads.

import { apiKey, onAuthNeeded, request, saveKey } from "./api.js";
import { setupChat } from "./chat.js";
import { setupDocuments } from "./documents.js";
import { setupJobs } from "./jobs.js";

const TABS = ["chat", "documents", "jobs"];

function showError(err) {
  const banner = document.getElementById("banner");
  if (err && err.status === 401) return;  // the key dialog says it
  banner.textContent = err.message || String(err);
  banner.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { banner.hidden = true; }, 8000);
}

function setupKeyDialog(onKey) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  const button = document.getElementById("key-button");
  const open = (message) => {
    button.hidden = false;
    error.textContent = apiKey() ? message : "";
    if (!dialog.open) {
      input.value = "";
      dialog.showModal();
    }
  };
  onAuthNeeded(open);
  button.addEventListener("click", () => open(""));
  document.getElementById("key-forget").addEventListener("click", () => {
    saveKey("");
    input.value = "";
    error.textContent = "Key forgotten.";
  });
  document.getElementById("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    saveKey(input.value.trim());
    if (await onKey()) dialog.close();
  });
}

async function loadModel() {
  try {
    const models = await request("GET", "/v1/models");
    const id = models.data.length ? models.data[0].id : "";
    document.getElementById("model").textContent = id === "retrieval-only" ? "retrieval only (no LLM)" : id;
    return true;
  } catch (err) {
    showError(err);
    return false;
  }
}

function route(views) {
  const tab = TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "chat";
  for (const name of TABS) {
    document.getElementById(name).hidden = name !== tab;
    document.querySelector(`nav a[data-tab=${name}]`).classList.toggle("active", name === tab);
  }
  if (views[tab]) views[tab].refresh();
}

function main() {
  setupChat();
  const views = { documents: setupDocuments(showError), jobs: setupJobs(showError) };
  document.getElementById("viewer-close").addEventListener("click", () => document.getElementById("viewer").close());
  setupKeyDialog(async () => {
    const ok = await loadModel();
    if (ok) route(views);
    return ok;
  });
  window.addEventListener("hashchange", () => route(views));
  if (apiKey()) document.getElementById("key-button").hidden = false;
  loadModel();
  route(views);
}

main();
