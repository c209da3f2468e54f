// The LLM playground: a model alias this person may use, a conversation
// streamed token by token through the proxy, and each call's tokens and cost
// (the model's prices, as the meter charges them).
import { useRef, useState } from "preact/hooks";
import { api, failure, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { ErrorNote, Field, Loading, useLoad } from "../ui";
import { useMoney } from "./settings";

type Model = Schemas["ModelView"];
interface Turn {
  role: "user" | "assistant";
  content: string;
  /** For a finished reply: what the call used and cost. */
  usage?: { prompt: number; completion: number; cost: number; currency: string };
}

interface Chunk {
  choices?: { delta?: { content?: string | null } }[];
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
}

/** Reads an OpenAI-style event stream (`data: {...}` lines, `data: [DONE]`). */
async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<Chunk> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        const data = line.startsWith("data:") ? line.slice(5).trim() : null;
        if (data === "[DONE]") return;
        if (data) yield JSON.parse(data) as Chunk;
      }
      end = buffer.indexOf("\n\n");
    }
  }
}

/** In millionths of the currency: a price per million tokens is one per token in millionths. */
function costMicros(model: Model, prompt: number, completion: number): number {
  const p = model.pricing;
  return prompt * p.input_per_million + completion * p.output_per_million;
}

export function Playground() {
  const { t, number } = useI18n();
  const money = useMoney();
  const models = useLoad(() => ok(api.GET("/api/llm/v1/models")).then((m) => m.data), []);
  const [chosen, setChosen] = useState<string | null>(null);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [streaming, setStreaming] = useState(false);
  const stop = useRef<AbortController | null>(null);
  const model = models.data?.find((m) => m.id === chosen) ?? models.data?.[0];

  const send = async (event: Event) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text || !model || streaming) return;
    const history: Turn[] = [...turns, { role: "user", content: text }];
    setTurns([...history, { role: "assistant", content: "" }]);
    setDraft("");
    setError(null);
    setStreaming(true);
    const controller = new AbortController();
    stop.current = controller;
    let reply = "";
    try {
      const response = await fetch("/api/llm/v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        signal: controller.signal,
        body: JSON.stringify({
          model: model.id,
          stream: true,
          stream_options: { include_usage: true },
          messages: history.map(({ role, content }) => ({ role, content })),
        }),
      });
      if (!response.ok || !response.body) {
        throw failure(response, await response.json().catch(() => null));
      }
      let usage: Turn["usage"];
      for await (const chunk of events(response.body)) {
        reply += chunk.choices?.[0]?.delta?.content ?? "";
        if (chunk.usage) {
          const { prompt_tokens: prompt, completion_tokens: completion } = chunk.usage;
          usage = {
            prompt,
            completion,
            cost: costMicros(model, prompt, completion),
            currency: model.pricing.currency,
          };
        }
        setTurns([...history, { role: "assistant", content: reply, usage }]);
      }
    } catch (e) {
      if (!controller.signal.aborted) setError(e);
      if (!reply) setTurns(history.slice(0, -1));
      if (!reply) setDraft(text);
    } finally {
      setStreaming(false);
      stop.current = null;
    }
  };

  if (models.error) return <ErrorNote error={models.error} />;
  if (!models.data) return <Loading />;
  return (
    <section class="stack">
      <h1>{t("playground.title")}</h1>
      {models.data.length === 0 ? (
        <p class="empty">{t("playground.no_models")}</p>
      ) : (
        <>
          <Field label={t("playground.model")}>
            {(id) => (
              <select id={id} value={model?.id} onChange={(e) => setChosen(e.currentTarget.value)}>
                {models.data?.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.id}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <div class="card stack" role="log" aria-label={t("playground.conversation")}>
            {turns.length === 0 && <p class="muted">{t("playground.empty")}</p>}
            {turns.map((turn, i) => (
              <article key={i} class={`turn ${turn.role}`}>
                <strong>
                  {t(turn.role === "user" ? "playground.you" : "playground.model_says")}
                </strong>
                <p>{turn.content || (streaming && i === turns.length - 1 ? "…" : "")}</p>
                {turn.usage && (
                  <p class="small muted usage">
                    {t("playground.usage", {
                      prompt: number(turn.usage.prompt),
                      completion: number(turn.usage.completion),
                      cost: money(turn.usage.cost, turn.usage.currency),
                    })}
                  </p>
                )}
              </article>
            ))}
          </div>
          <ErrorNote error={error} />
          <form class="composer" onSubmit={send}>
            <label class="skip" for="prompt">
              {t("playground.prompt")}
            </label>
            <textarea
              id="prompt"
              rows={2}
              value={draft}
              onInput={(e) => setDraft(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter" && !e.shiftKey) send(e);
              }}
            />
            {streaming ? (
              <button type="button" class="secondary" onClick={() => stop.current?.abort()}>
                {t("playground.stop")}
              </button>
            ) : (
              <button type="submit">{t("playground.send")}</button>
            )}
          </form>
        </>
      )}
    </section>
  );
}
