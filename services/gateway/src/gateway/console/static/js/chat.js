// Chat: the answer streamed in as it arrives, then its numbered sources; [n] in the answer
// is a link to source n. The conversation is kept in memory until "New conversation".

import { ApiError, events } from "./api.js";
import { el, safeHref } from "./dom.js";

const CITATION = /\[(\d+)\]/g;

export function setupChat() {
  const log = document.getElementById("chat-log");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const send = document.getElementById("chat-send");
  const rag = document.getElementById("chat-rag");
  const scrape = document.getElementById("chat-scrape");
  let messages = [];
  let turn = 0;
  let current = null;

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const question = input.value.trim();
    if (!question || current) return;
    input.value = "";
    ask(question);
  });
  document.getElementById("chat-new").addEventListener("click", () => {
    if (current) current.abort();
    messages = [];
    log.querySelectorAll(".msg").forEach((m) => m.remove());
  });

  async function ask(question) {
    turn += 1;
    current = new AbortController();
    send.disabled = true;
    messages.push({ role: "user", content: question });
    const answer = el("div", { class: "bubble answer streaming" });
    const sources = el("ol", { class: "sources" });
    log.append(el("div", { class: "msg user" }, el("div", { class: "bubble", text: question })),
               el("div", { class: "msg assistant" }, answer, sources));
    answer.scrollIntoView({ block: "end" });
    const body = { messages, stream: true, genai: { rag: rag.checked, scrape: scrape.checked } };
    let text = "";
    let final = null;
    try {
      for await (const event of events("POST", "/v1/chat/completions", body, current.signal)) {
        if (event.data === "[DONE]") break;
        const chunk = JSON.parse(event.data);
        if (chunk.error) throw new ApiError(0, `the answer stopped: ${chunk.error.message || "upstream error"}`);
        for (const choice of chunk.choices || []) {
          const delta = choice.delta && choice.delta.content;
          if (delta) {
            text += delta;
            answer.textContent = text;
          }
        }
        if (chunk.sources) final = chunk;
      }
      messages.push({ role: "assistant", content: text });
      showAnswer(answer, sources, text, final, turn);
    } catch (err) {
      messages.pop();
      if (!current.signal.aborted) answer.append(el("span", { class: "error", text: ` ${err.message}` }));
    } finally {
      answer.classList.remove("streaming");
      current = null;
      send.disabled = false;
    }
  }
}

function showAnswer(answer, list, text, final, turn) {
  const known = new Map(((final && final.sources) || []).map((s) => [String(s.id), s]));
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(CITATION)) {
    if (!known.has(match[1])) continue;
    parts.push(text.slice(last, match.index), citeLink(match[1], turn));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  answer.replaceChildren(...parts);
  for (const source of known.values()) list.append(sourceItem(source, turn));
  const missing = (final && final.sources_unavailable) || [];
  if (missing.length) list.after(el("p", { class: "note", text: `Not consulted (unavailable): ${missing.join(", ")}` }));
}

function citeLink(id, turn) {
  return el("a", {
    class: "cite", href: `#chat`, text: `[${id}]`, title: `source ${id}`,
    onclick: (e) => {
      e.preventDefault();
      const item = document.getElementById(`source-${turn}-${id}`);
      item.classList.add("open", "highlight");
      item.scrollIntoView({ block: "nearest", behavior: "smooth" });
      setTimeout(() => item.classList.remove("highlight"), 1500);
    },
  });
}

function sourceItem(source, turn) {
  let label;
  if (source.kind === "url") {
    const href = safeHref(source.url);
    const title = source.title || source.url;
    label = href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: title }) : el("span", { text: title });
  } else {
    label = el("span", { text: source.page ? `${source.name}, page ${source.page}` : source.name });
  }
  const item = el("li", { id: `source-${turn}-${source.id}`, class: "source" },
    el("button", { type: "button", class: "source-toggle", text: `[${source.id}]`, title: "show the passage",
                   onclick: () => item.classList.toggle("open") }),
    " ", label,
    el("p", { class: "snippet", text: source.snippet || "" }));
  return item;
}
