// A rule set — an agent's (for those who manage it) or a community's (for
// those who write it: it binds its agents and every agent in its rooms):
// blocked words and patterns, personal data redacted, tool results that
// read like instructions withheld, quiet hours, answers per minute in a
// room — and what the rules blocked and redacted lately.
import { useState } from "preact/hooks";
import { ApiFailure, api, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { ErrorNote, Field, Listed, Loading, useAction, useLoad, usePaged } from "../ui";

type Rules = Schemas["Rules"];

const NO_RULES: Rules = {
  blocked_patterns: [],
  blocked_terms: [],
  injection_guard: false,
  max_answers_per_minute: null,
  max_input_chars: null,
  max_output_chars: null,
  quiet_hours: null,
  redact_pii: false,
};

/** Whose rules: an agent's or a community's. */
export type Scope = { agent: string } | { dao: string };

const key = (scope: Scope) => ("agent" in scope ? `agent:${scope.agent}` : `dao:${scope.dao}`);

const readRules = (scope: Scope) =>
  "agent" in scope
    ? ok(api.GET("/api/filter/agents/{agent}/rules", { params: { path: scope } }))
    : ok(api.GET("/api/filter/daos/{dao}/rules", { params: { path: scope } }));

const writeRules = (scope: Scope, body: Rules) =>
  "agent" in scope
    ? ok(api.PUT("/api/filter/agents/{agent}/rules", { params: { path: scope }, body }))
    : ok(api.PUT("/api/filter/daos/{dao}/rules", { params: { path: scope }, body }));

const readEvents = (scope: Scope, cursor: string | undefined) =>
  "agent" in scope
    ? ok(
        api.GET("/api/filter/agents/{agent}/events", {
          params: { path: scope, query: { limit: 20, cursor } },
        }),
      )
    : ok(
        api.GET("/api/filter/daos/{dao}/events", {
          params: { path: scope, query: { limit: 20, cursor } },
        }),
      );

export function Filters({ scope }: { scope: Scope }) {
  const { t } = useI18n();
  const [version, setVersion] = useState(0);
  const current = useLoad(
    () =>
      readRules(scope)
        .then((set) => set.rules)
        .catch((e: unknown) => {
          // No rule set yet: nothing is filtered.
          if (e instanceof ApiFailure && e.status === 404) return NO_RULES;
          throw e;
        }),
    [key(scope), version],
  );
  if (current.error instanceof ApiFailure && current.error.status === 403) return null;
  return (
    <section class="stack" aria-labelledby="agent-filters">
      <h2 id="agent-filters">{t("filters.title")}</h2>
      <ErrorNote error={current.error} />
      {!current.data && !current.error && <Loading />}
      {current.data && (
        <RulesForm
          key={version}
          scope={scope}
          rules={current.data}
          saved={() => setVersion((v) => v + 1)}
        />
      )}
      {version > 0 && (
        <p role="status" class="small muted">
          {t("filters.saved")}
        </p>
      )}
      <FilterEvents scope={scope} version={version} />
    </section>
  );
}

const lines = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);

function RulesForm({ scope, rules, saved }: { scope: Scope; rules: Rules; saved: () => void }) {
  const { t } = useI18n();
  const [terms, setTerms] = useState(rules.blocked_terms.join("\n"));
  const [patterns, setPatterns] = useState(rules.blocked_patterns.join("\n"));
  const [pii, setPii] = useState(rules.redact_pii);
  const [guard, setGuard] = useState(rules.injection_guard);
  const [perMinute, setPerMinute] = useState(String(rules.max_answers_per_minute ?? ""));
  const [quietFrom, setQuietFrom] = useState(rules.quiet_hours?.from ?? "");
  const [quietTo, setQuietTo] = useState(rules.quiet_hours?.to ?? "");
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      await writeRules(scope, {
        ...rules,
        blocked_terms: lines(terms),
        blocked_patterns: lines(patterns),
        redact_pii: pii,
        injection_guard: guard,
        max_answers_per_minute: perMinute ? Number(perMinute) : null,
        quiet_hours:
          quietFrom && quietTo
            ? {
                from: quietFrom,
                to: quietTo,
                utc_offset_minutes: -new Date().getTimezoneOffset(),
              }
            : null,
      });
      saved();
    });
  };
  return (
    <form class="card stack" aria-label={t("filters.form")} onSubmit={submit}>
      <Field label={t("filters.terms")} hint={t("filters.one_per_line")}>
        {(id) => (
          <textarea
            id={id}
            rows={3}
            value={terms}
            onInput={(e) => setTerms(e.currentTarget.value)}
          />
        )}
      </Field>
      <Field label={t("filters.patterns")} hint={t("filters.patterns_hint")}>
        {(id) => (
          <textarea
            id={id}
            rows={2}
            class="code"
            value={patterns}
            onInput={(e) => setPatterns(e.currentTarget.value)}
          />
        )}
      </Field>
      <label class="check">
        <input type="checkbox" checked={pii} onChange={(e) => setPii(e.currentTarget.checked)} />{" "}
        {t("filters.redact_pii")}
      </label>
      <label class="check">
        <input
          type="checkbox"
          checked={guard}
          onChange={(e) => setGuard(e.currentTarget.checked)}
        />{" "}
        {t("filters.injection_guard")}
      </label>
      <Field label={t("filters.per_minute")} hint={t("filters.per_minute_hint")}>
        {(id) => (
          <input
            id={id}
            type="number"
            min={1}
            max={1000}
            value={perMinute}
            onInput={(e) => setPerMinute(e.currentTarget.value)}
          />
        )}
      </Field>
      <div class="row">
        <Field label={t("filters.quiet_from")}>
          {(id) => (
            <input
              id={id}
              type="time"
              value={quietFrom}
              onInput={(e) => setQuietFrom(e.currentTarget.value)}
            />
          )}
        </Field>
        <Field label={t("filters.quiet_to")}>
          {(id) => (
            <input
              id={id}
              type="time"
              value={quietTo}
              onInput={(e) => setQuietTo(e.currentTarget.value)}
            />
          )}
        </Field>
      </div>
      <ErrorNote error={error} />
      <div class="row">
        <button type="submit" disabled={busy}>
          {t("filters.save")}
        </button>
      </div>
    </form>
  );
}

function FilterEvents({ scope, version }: { scope: Scope; version: number }) {
  const { t, dateTime } = useI18n();
  const events = usePaged((cursor) => readEvents(scope, cursor), [key(scope), version]);
  return (
    <div class="stack">
      <h3>{t("filters.events")}</h3>
      <Listed items={events.items} error={events.error} empty={t("filters.no_events")}>
        {(items) => (
          <ul class="list card" aria-label={t("filters.events")}>
            {items.map((e) => (
              <li key={e.id}>
                <strong>
                  {t(`filters.action.${e.action === "blocked" ? "blocked" : "redacted"}`)}
                </strong>{" "}
                ·{" "}
                {t(
                  `filters.direction.${e.direction === "tool" ? "tool" : e.direction === "output" ? "output" : "input"}`,
                )}{" "}
                · {e.rule}
                <div class="small muted">{dateTime(e.created_at)}</div>
              </li>
            ))}
          </ul>
        )}
      </Listed>
    </div>
  );
}
