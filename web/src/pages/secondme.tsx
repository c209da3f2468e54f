// Second Me: a person's own agent. Their conversations with it on the
// side, one conversation's turns, and a composer; the first message makes
// the agent. What they say is kept in their own memory (Settings › My
// memory) and recalled in later conversations.
import { useEffect, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, idempotencyKey, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { Busy, ErrorNote, Listed, Loading, MoreButton, useAction, useLoad, usePaged } from "../ui";

/** A turn, or the person's while it waits for its answer. */
type Pending = Pick<Schemas["Turn"], "role" | "content" | "recalled">;

export function SecondMe({ conversation }: { conversation?: string }) {
  const { t } = useI18n();
  const { route } = useLocation();
  const me = useLoad(() => ok(api.GET("/api/secondme/me")), []);
  const conversations = usePaged(
    (cursor) =>
      ok(api.GET("/api/secondme/conversations", { params: { query: { limit: 30, cursor } } })),
    [],
  );
  const open = (id: string | undefined) => route(id ? `/second-me/${id}` : "/second-me");
  return (
    <section class="stack">
      <div class="row spread">
        <h1>{t("secondme.title")}</h1>
        {me.data?.agent && (
          <a href={`/hub/${me.data.agent}`} class="small">
            {t("secondme.settings")}
          </a>
        )}
      </div>
      <p class="muted">{t("secondme.intro")}</p>
      <div class="settings">
        <nav class="subnav" aria-label={t("secondme.conversations")}>
          <a href="/second-me" aria-current={conversation ? undefined : "page"}>
            {t("secondme.new")}
          </a>
          <Listed items={conversations.items} error={conversations.error} empty="">
            {(items) =>
              items.map((c) => (
                <a
                  key={c.id}
                  href={`/second-me/${c.id}`}
                  aria-current={c.id === conversation ? "page" : undefined}
                >
                  {c.title}
                </a>
              ))
            }
          </Listed>
          <MoreButton paged={conversations} />
        </nav>
        <Conversation
          key={conversation ?? "new"}
          id={conversation}
          started={(id) => {
            conversations.reload();
            me.reload();
            open(id);
          }}
          deleted={() => {
            conversations.reload();
            open(undefined);
          }}
        />
      </div>
    </section>
  );
}

function Conversation({
  id,
  started,
  deleted,
}: {
  id: string | undefined;
  started: (id: string) => void;
  deleted: () => void;
}) {
  const { t } = useI18n();
  const [turns, setTurns] = useState<Pending[] | undefined>(id ? undefined : []);
  const [draft, setDraft] = useState("");
  const send = useAction();
  const remove = useAction();
  const loaded = useLoad(
    () =>
      id
        ? ok(
            api.GET("/api/secondme/conversations/{conversation}/turns", {
              params: { path: { conversation: id }, query: { limit: 100 } },
            }),
          ).then((page) => page.items)
        : Promise.resolve([]),
    [id],
  );
  useEffect(() => {
    if (loaded.data && turns === undefined) setTurns(loaded.data);
  }, [loaded.data]);

  const submit = (event: Event) => {
    event.preventDefault();
    const message = draft.trim();
    if (!message || send.busy) return;
    const before = turns ?? [];
    setTurns([...before, { role: "user", content: message, recalled: false }]);
    setDraft("");
    void send.run(async () => {
      try {
        const answer = await ok(
          api.POST("/api/secondme/invoke", {
            params: { header: { "Idempotency-Key": idempotencyKey() } },
            body: { message, conversation: id ?? null },
          }),
        );
        setTurns([...before, answer.said, answer.answer]);
        if (!id) started(answer.conversation.id);
      } catch (e) {
        setTurns(before);
        setDraft(message);
        throw e;
      }
    });
  };

  if (loaded.error) return <ErrorNote error={loaded.error} />;
  if (!turns) return <Loading />;
  return (
    <div class="stack">
      <div class="card stack" role="log" aria-label={t("secondme.conversation")}>
        {turns.length === 0 && <p class="muted">{t("secondme.empty")}</p>}
        {turns.map((turn, i) => (
          <article key={i} class={`turn ${turn.role}`}>
            <strong>{t(turn.role === "user" ? "secondme.you" : "secondme.it")}</strong>
            <p>{turn.content}</p>
            {turn.recalled && <p class="small muted">{t("secondme.recalled")}</p>}
          </article>
        ))}
        {send.busy && (
          <p class="muted" aria-live="polite">
            <Busy busy label="secondme.thinking" />
          </p>
        )}
      </div>
      <ErrorNote error={send.error} />
      <form class="composer" onSubmit={submit}>
        <label class="skip" for="second-me-message">
          {t("secondme.message")}
        </label>
        <textarea
          id="second-me-message"
          rows={2}
          maxLength={4000}
          value={draft}
          onInput={(e) => setDraft(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) submit(e);
          }}
        />
        <button type="submit" disabled={send.busy}>
          {t("secondme.send")}
        </button>
      </form>
      {id && (
        <div>
          <button
            type="button"
            class="ghost"
            disabled={remove.busy}
            onClick={() =>
              remove.run(async () => {
                await ok(
                  api.DELETE("/api/secondme/conversations/{conversation}", {
                    params: { path: { conversation: id } },
                  }),
                );
                deleted();
              })
            }
          >
            {t("secondme.delete")}
          </button>
          <ErrorNote error={remove.error} />
        </div>
      )}
    </div>
  );
}
