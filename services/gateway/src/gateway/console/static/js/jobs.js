// The job board: image and text jobs with live progress from their event streams, cancel,
// an image gallery with a full-size view, and text results.

import { events, imageUrl, request } from "./api.js";
import { el, seconds, shorten } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "not_found"]);
// A browser opens at most 6 connections to one host: leave room for the rest of the console.
const STREAMS_AT_ONCE = 3;
const POLL_MS = 2000;

export function setupJobs(showError) {
  const list = document.getElementById("job-list");
  const empty = document.getElementById("jobs-empty");
  const cards = new Map();    // job id -> { job, node, images }
  const streams = new Map();  // job id -> AbortController
  let pollTimer = null;

  bindForm("image-form", "image-error", async () => {
    const seed = document.getElementById("image-seed").value;
    const body = {
      prompt: document.getElementById("image-prompt").value,
      n: Number(document.getElementById("image-n").value),
      size: document.getElementById("image-size").value,
      steps: Number(document.getElementById("image-steps").value),
    };
    if (seed !== "") body.seed = Number(seed);
    show(await request("POST", "/v1/jobs/images", body), true);
  });
  bindForm("text-form", "text-error", async () => {
    const prompts = document.getElementById("text-prompts").value.split("\n").map((p) => p.trim()).filter(Boolean);
    const maxTokens = Number(document.getElementById("text-max-tokens").value);
    const reply = await request("POST", "/v1/jobs/text", { prompts, max_tokens: maxTokens });
    for (const job of reply.data.slice().reverse()) show(job, true);
  });
  document.getElementById("jobs-refresh").addEventListener("click", () => refresh());
  setInterval(tick, 1000);

  async function refresh() {
    try {
      const jobs = (await request("GET", "/v1/jobs?limit=30")).data;
      for (const job of jobs.slice().reverse()) show(job, !cards.has(job.id));
    } catch (err) {
      showError(err);
    }
  }

  function show(job, newest) {
    let card = cards.get(job.id);
    if (!card) {
      card = { job, node: el("li", { class: "card job", "data-id": job.id }), images: false };
      cards.set(job.id, card);
      if (newest) list.prepend(card.node);
      else list.append(card.node);
    }
    card.job = job;
    draw(card, cancel);
    if (job.status === "succeeded" && job.kind === "image" && !card.images) loadImages(card);
    if (!TERMINAL.has(job.status)) follow(job.id);
    empty.hidden = cards.size > 0;
  }

  function follow(id) {
    if (streams.has(id)) return;
    if (streams.size >= STREAMS_AT_ONCE) {
      if (!pollTimer) pollTimer = setTimeout(poll, POLL_MS);
      return;
    }
    const controller = new AbortController();
    streams.set(id, controller);
    (async () => {
      try {
        for await (const event of events("GET", `/v1/jobs/${encodeURIComponent(id)}/events`, undefined, controller.signal)) {
          show(JSON.parse(event.data), false);
        }
      } catch (err) {
        if (!controller.signal.aborted) showError(err);
      } finally {
        streams.delete(id);
        const card = cards.get(id);
        if (card && !TERMINAL.has(card.job.status) && !pollTimer) pollTimer = setTimeout(poll, POLL_MS);
      }
    })();
  }

  // Jobs beyond the streams' limit (or whose stream ended early) are read in one batched call.
  async function poll() {
    pollTimer = null;
    const ids = [...cards.values()].filter((c) => !TERMINAL.has(c.job.status) && !streams.has(c.job.id)).map((c) => c.job.id);
    if (!ids.length) return;
    try {
      const jobs = (await request("GET", `/v1/jobs?ids=${ids.slice(0, 100).map(encodeURIComponent).join(",")}`)).data;
      for (const job of jobs) if (cards.has(job.id)) show(job, false);
    } catch (err) {
      showError(err);
    }
    if (!pollTimer) pollTimer = setTimeout(poll, POLL_MS);
  }

  async function cancel(job) {
    try {
      show(await request("DELETE", `/v1/jobs/${encodeURIComponent(job.id)}`), false);
    } catch (err) {
      showError(err);
    }
  }

  async function loadImages(card) {
    card.images = true;
    const gallery = card.node.querySelector(".gallery");
    for (const result of card.job.results || []) {
      try {
        const url = await imageUrl(result.url);
        const label = `image ${result.index + 1} of job ${card.job.id}`;
        gallery.append(el("button", { type: "button", class: "thumb", title: "full size", onclick: () => view(url, label) },
          el("img", { src: url, alt: label, width: 96, height: 96 })));
      } catch (err) {
        showError(err);
      }
    }
  }

  function tick() {
    for (const card of cards.values()) {
      if (!TERMINAL.has(card.job.status)) card.node.querySelector(".elapsed").textContent = elapsed(card.job);
    }
  }

  return { refresh };
}

function bindForm(formId, errorId, submit) {
  const form = document.getElementById(formId);
  const error = document.getElementById(errorId);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await submit();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
}

function elapsed(job) {
  const start = job.started_at || job.created_at;
  const end = job.finished_at || Date.now() / 1000;
  return start ? seconds(end - start) : "";
}

// Redraws a card from its job; the gallery (images already loaded) is kept.
function draw(card, cancel) {
  const { job, node } = card;
  const params = job.params || {};
  const what = job.kind === "image" ? `${params.n || 1} × ${params.size || ""}, ${params.steps || "?"} steps`
    : `up to ${params.max_tokens || "?"} tokens`;
  const gallery = node.querySelector(".gallery") || el("div", { class: "gallery" });
  const progress = job.progress || 0;
  node.className = `card job ${job.status}`;
  node.replaceChildren(...[
    el("div", { class: "row" },
      el("span", { class: "kind", text: job.kind }), el("span", { class: "what", text: what }), el("span", { class: "grow" }),
      el("span", { class: `badge ${job.status}`, text: job.status }),
      TERMINAL.has(job.status) ? null : el("button", { type: "button", class: "quiet", text: "Cancel", onclick: () => cancel(job) })),
    el("p", { class: "prompt", text: shorten(params.prompt || "", 300) }),
    el("div", { class: "row" },
      el("progress", { max: 100, value: progress, "aria-label": "progress" }),
      el("span", { class: "percent", text: `${progress} %` }),
      el("span", { class: "elapsed", text: elapsed(job) })),
    job.error && job.error.message ? el("p", { class: "error", text: job.error.message }) : null,
    job.kind === "text" && job.output_text ? el("p", { class: "output", text: job.output_text }) : null,
    gallery].filter(Boolean));
}

function view(url, label) {
  const dialog = document.getElementById("viewer");
  document.getElementById("viewer-image").src = url;
  document.getElementById("viewer-image").alt = label;
  document.getElementById("viewer-caption").textContent = label;
  document.getElementById("viewer-open").href = url;
  dialog.showModal();
}
