// A local stand-in for an OpenAI-compatible provider, speaking the real
// protocol: `POST /v1/chat/completions`, streamed as server-sent events
// (with the usage chunk when `stream_options.include_usage` asks) or as one
// JSON reply. Its answer is fixed, so a test knows what to expect — except
// when it is given what a Second Me recalled: then it reads its context
// and answers with the recalled line nearest the question.
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const REPLY = ["Hello", " from", " the", " fake", " model."];

/** How Second Me introduces what it recalls (`secondme::domain::RECALL_HEADER`). */
const RECALLED = "From what this person told you before";

const words = (text) => new Set(text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []);

/**
 * The reply to `messages`: with a recall before the question, "You told
 * me: " and the recalled line sharing the most words with it; else REPLY.
 */
function replyTo(messages) {
  const question = messages.at(-1);
  const recall = messages.find((m) => m.role === "system" && m.content?.startsWith(RECALLED));
  if (!recall || question?.role !== "user") return REPLY;
  const asked = words(question.content);
  let best = null;
  let most = 0;
  for (const line of recall.content.split("\n").slice(1)) {
    if (line.startsWith("[")) continue;
    const shared = [...words(line)].filter((w) => asked.has(w)).length;
    if (shared > most) [best, most] = [line.trim(), shared];
  }
  return best ? ["You told me: ", best] : REPLY;
}

export async function startFakeOpenAI() {
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => {
      raw += c;
    });
    req.on("end", () => {
      if (req.method !== "POST" || !req.url.endsWith("/chat/completions")) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: "not found", type: "invalid_request_error" } }));
        return;
      }
      const body = JSON.parse(raw);
      const reply = replyTo(body.messages);
      const prompt = body.messages
        .map((m) => m.content)
        .join(" ")
        .split(/\s+/).length;
      const usage = {
        prompt_tokens: prompt,
        completion_tokens: reply.length,
        total_tokens: prompt + reply.length,
      };
      const base = {
        id: "chatcmpl-fake",
        object: "chat.completion.chunk",
        created: 0,
        model: body.model,
      };
      // "use <function> [{json}]" in the last turn, with that function
      // offered: a tool call with those arguments, or none (then, after its
      // answer, the reply).
      const last = body.messages.at(-1);
      const asked = last?.role === "user" && /\buse (\w+)\s*(\{.*\})?/s.exec(last.content ?? "");
      const offered = asked && body.tools?.some((t) => t.function?.name === asked[1]);
      const call = offered
        ? {
            id: "call_fake",
            type: "function",
            function: { name: asked[1], arguments: asked[2] ?? "{}" },
          }
        : null;
      const finish = call ? "tool_calls" : "stop";
      if (!body.stream) {
        const message = call
          ? { role: "assistant", content: null, tool_calls: [call] }
          : { role: "assistant", content: reply.join("") };
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            ...base,
            object: "chat.completion",
            choices: [{ index: 0, message, finish_reason: finish }],
            usage,
          }),
        );
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      const send = (chunk) => res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      const first = call
        ? { role: "assistant", tool_calls: [{ index: 0, ...call }] }
        : { role: "assistant", content: "" };
      send({ ...base, choices: [{ index: 0, delta: first, finish_reason: null }] });
      const said = call ? [] : reply;
      let i = 0;
      const next = () => {
        if (i < said.length) {
          send({
            ...base,
            choices: [{ index: 0, delta: { content: said[i++] }, finish_reason: null }],
          });
          setTimeout(next, 20);
          return;
        }
        send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: finish }] });
        if (body.stream_options?.include_usage) send({ ...base, choices: [], usage });
        res.end("data: [DONE]\n\n");
      };
      next();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/v1`,
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * A `daarion.toml` whose model alias `alias` is `fake` (with `extra` lines
 * for the alias, a price say), for `startCity({ DAARION_CONFIG })`.
 */
export function fakeModelConfig(fake, alias, extra = "") {
  const config = join(tmpdir(), `daarion-e2e-${alias}-${process.pid}.toml`);
  writeFileSync(
    config,
    `[llm.providers.fake]
kind = "openai"
base_url = "${fake.url}"

[llm.models.${alias}]
deployments = [{ provider = "fake", model = "fake-model" }]
${extra}`,
  );
  return config;
}
