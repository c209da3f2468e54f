// Facts: a community's (what holds now, each with its history; what is
// linked to an entity) and a person's own, which no one else reads. A
// newer fact for the same subject and relation replaces the one before.
import { useState } from "preact/hooks";
import { api, idempotencyKey, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { useSession } from "../session";
import { Busy, ErrorNote, Field, Listed, MoreButton, useAction, useLoad, usePaged } from "../ui";

type Fact = Schemas["Fact"];
type Remember = Schemas["RememberFact"];

const said = (f: Fact) => `${f.subject} ${f.predicate} ${f.object}`;

export function CommunityFacts({ slug, admin }: { slug: string; admin: boolean }) {
  const { t } = useI18n();
  const facts = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/memory/daos/{dao}/facts", {
          params: { path: { dao: slug }, query: { limit: 50, cursor } },
        }),
      ),
    [slug],
  );
  const remember = (body: Remember) =>
    ok(
      api.POST("/api/memory/daos/{dao}/facts", {
        params: { path: { dao: slug }, header: { "Idempotency-Key": idempotencyKey() } },
        body,
      }),
    );
  return (
    <section class="stack" aria-labelledby="facts">
      <h3 id="facts">{t("facts.title")}</h3>
      <p class="muted">{t("facts.intro")}</p>
      <FactList paged={facts} admin={admin} />
      <Around slug={slug} />
      <RememberFact remember={remember} remembered={facts.reload} />
    </section>
  );
}

/** One's own facts, in Settings › My memory. */
export function OwnFacts({ changed }: { changed: () => void }) {
  const { t } = useI18n();
  const facts = usePaged(
    (cursor) => ok(api.GET("/api/memory/me/facts", { params: { query: { limit: 50, cursor } } })),
    [],
  );
  const remember = (body: Remember) =>
    ok(
      api.POST("/api/memory/me/facts", {
        params: { header: { "Idempotency-Key": idempotencyKey() } },
        body,
      }),
    );
  return (
    <section class="stack" aria-labelledby="own-facts">
      <h3 id="own-facts">{t("facts.mine")}</h3>
      <p class="muted">{t("facts.mine_intro")}</p>
      <FactList paged={facts} admin={true} changed={changed} />
      <RememberFact
        remember={remember}
        remembered={() => {
          facts.reload();
          changed();
        }}
      />
    </section>
  );
}

function FactList({
  paged,
  admin,
  changed,
}: {
  paged: ReturnType<typeof usePaged<Fact>>;
  admin: boolean;
  changed?: () => void;
}) {
  const { t, dateTime } = useI18n();
  const { user } = useSession();
  const [open, setOpen] = useState<string | null>(null);
  const change = useAction();
  const forget = (id: string) =>
    change.run(async () => {
      await ok(api.DELETE("/api/memory/facts/{fact}", { params: { path: { fact: id } } }));
      paged.reload();
      changed?.();
    });
  return (
    <>
      <Listed items={paged.items} error={paged.error} empty={t("facts.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("facts.holding")}>
            {items.map((f) => (
              <li key={f.id} class="stack">
                <span class="row spread">
                  <span class="stack">
                    <strong>{said(f)}</strong>
                    <span class="muted small">
                      {f.author_name} · {t("facts.since", { time: dateTime(f.valid_from) })}
                      {f.source && ` · ${f.source}`}
                    </span>
                  </span>
                  <span class="row">
                    <button
                      type="button"
                      class="ghost"
                      aria-expanded={open === f.id}
                      aria-label={t("facts.history_of", { fact: said(f) })}
                      onClick={() => setOpen(open === f.id ? null : f.id)}
                    >
                      {t("facts.history")}
                    </button>
                    {(admin || f.author === `user:${user?.id}`) && (
                      <button
                        type="button"
                        class="ghost"
                        aria-label={t("facts.forget_named", { fact: said(f) })}
                        onClick={() => forget(f.id)}
                        disabled={change.busy}
                      >
                        {t("facts.forget")}
                      </button>
                    )}
                  </span>
                </span>
                {open === f.id && <History id={f.id} title={said(f)} />}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={paged} />
      <ErrorNote error={change.error} />
    </>
  );
}

function History({ id, title }: { id: string; title: string }) {
  const { t, dateTime } = useI18n();
  const view = useLoad(
    () => ok(api.GET("/api/memory/facts/{fact}", { params: { path: { fact: id } } })),
    [id],
  );
  return (
    <Listed items={view.data?.history} error={view.error} empty="">
      {(items) => (
        <ol class="list" aria-label={t("facts.history_of", { fact: title })}>
          {items.map((f) => (
            <li key={f.id} class="row spread">
              <span>{said(f)}</span>
              <span class="muted small">
                {t("facts.since", { time: dateTime(f.valid_from) })}
                {f.superseded_at &&
                  ` · ${t("facts.replaced", { time: dateTime(f.superseded_at) })}`}
              </span>
            </li>
          ))}
        </ol>
      )}
    </Listed>
  );
}

function Around({ slug }: { slug: string }) {
  const { t } = useI18n();
  const [entity, setEntity] = useState("");
  const [edges, setEdges] = useState<Fact[] | null>(null);
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const found = await ok(
        api.GET("/api/memory/daos/{dao}/graph/neighbours", {
          params: { path: { dao: slug }, query: { entity: entity.trim(), depth: 2 } },
        }),
      );
      setEdges(found.edges);
    });
  };
  return (
    <form class="card stack" aria-label={t("facts.around")} onSubmit={submit}>
      <Field label={t("facts.around")}>
        {(id) => (
          <input
            id={id}
            required
            maxLength={300}
            value={entity}
            onInput={(e) => setEntity(e.currentTarget.value)}
          />
        )}
      </Field>
      <button type="submit" class="secondary" disabled={busy}>
        <Busy busy={busy} label="facts.show" />
      </button>
      <ErrorNote error={error} />
      {edges && edges.length === 0 && <p class="muted">{t("facts.nothing_linked")}</p>}
      {edges && edges.length > 0 && (
        <ul class="list" aria-label={t("facts.linked")}>
          {edges.map((f) => (
            <li key={f.id}>{said(f)}</li>
          ))}
        </ul>
      )}
    </form>
  );
}

function RememberFact({
  remember,
  remembered,
}: {
  remember: (body: Remember) => Promise<Schemas["Remembered"]>;
  remembered: () => void;
}) {
  const { t } = useI18n();
  const [subject, setSubject] = useState("");
  const [predicate, setPredicate] = useState("");
  const [object, setObject] = useState("");
  const [many, setMany] = useState(false);
  const [known, setKnown] = useState(false);
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const done = await remember({
        subject: subject.trim(),
        predicate: predicate.trim(),
        object: object.trim(),
        cardinality: many ? "many" : "one",
      });
      setKnown(done.outcome === "known");
      setObject("");
      remembered();
    });
  };
  const input = (value: string, set: (v: string) => void) => (id: string) => (
    <input
      id={id}
      required
      maxLength={300}
      value={value}
      onInput={(e) => set(e.currentTarget.value)}
    />
  );
  return (
    <form class="card stack" aria-label={t("facts.add")} onSubmit={submit}>
      <h4>{t("facts.add")}</h4>
      <Field label={t("facts.subject")}>{input(subject, setSubject)}</Field>
      <Field label={t("facts.predicate")}>{input(predicate, setPredicate)}</Field>
      <Field label={t("facts.object")}>{input(object, setObject)}</Field>
      <label class="row">
        <input type="checkbox" checked={many} onChange={(e) => setMany(e.currentTarget.checked)} />
        {t("facts.many")}
      </label>
      <ErrorNote error={error} />
      {known && <p class="muted">{t("facts.known")}</p>}
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="facts.add" />
      </button>
    </form>
  );
}
