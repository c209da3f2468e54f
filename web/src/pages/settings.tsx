// A person's own settings: profile, passkeys, sessions, API keys, usage and
// budget, what memory holds about them. Each section loads its own data and shows its own errors.
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api/client";
import type { paths } from "../api/schema";
import { type Key, useI18n } from "../i18n";
import { withRecentPasskey } from "../reauth";
import { useSession } from "../session";
import { Busy, ErrorNote, Field, Listed, Loading, useAction, useLoad } from "../ui";
import * as webauthn from "../webauthn";
import { MyMemory } from "./knowledge";
import { RecoveryCodes } from "./recovery";

const SECTIONS: [string, Key][] = [
  ["profile", "settings.profile"],
  ["passkeys", "settings.passkeys"],
  ["recovery", "recovery.title"],
  ["sessions", "settings.sessions"],
  ["api-keys", "settings.api_keys"],
  ["usage", "settings.usage"],
  ["memory", "memory.mine"],
];

export function Settings({ section, welcome }: { section: string; welcome: boolean }) {
  const { t } = useI18n();
  const page: Record<string, () => ComponentChildren> = {
    profile: () => <Profile />,
    passkeys: () => <Passkeys />,
    recovery: () => <RecoveryCodes welcome={welcome} />,
    sessions: () => <Sessions />,
    "api-keys": () => <ApiKeys />,
    usage: () => <Usage />,
    memory: () => <MyMemory />,
  };
  return (
    <div class="settings">
      <nav aria-label={t("nav.settings")} class="subnav">
        {SECTIONS.map(([id, label]) => (
          <a key={id} href={`/settings/${id}`} aria-current={id === section ? "page" : undefined}>
            {t(label)}
          </a>
        ))}
      </nav>
      <div>{(page[section] ?? page.profile)?.()}</div>
    </div>
  );
}

function Profile() {
  const { t, dateTime } = useI18n();
  const { user, signedIn } = useSession();
  const [display, setDisplay] = useState(user?.display_name ?? "");
  const [saved, setSaved] = useState(false);
  const save = useAction();
  if (!user) return null;

  const submit = (event: Event) => {
    event.preventDefault();
    setSaved(false);
    save.run(async () => {
      const updated = await ok(api.PATCH("/api/auth/me", { body: { display_name: display } }));
      signedIn(updated);
      setDisplay(updated.display_name);
      setSaved(true);
    });
  };

  return (
    <section class="stack">
      <h1>{t("settings.profile")}</h1>
      <dl class="card facts">
        <dt>{t("auth.username")}</dt>
        <dd>{user.username}</dd>
        <dt>{t("settings.role")}</dt>
        <dd>{t(`role.${user.city_role}`)}</dd>
        <dt>{t("settings.member_since")}</dt>
        <dd>{dateTime(user.created_at)}</dd>
      </dl>
      <form class="card stack" onSubmit={submit}>
        <Field label={t("auth.display_name")} hint={t("profile.display_hint")}>
          {(id) => (
            <input
              id={id}
              required
              maxLength={64}
              value={display}
              onInput={(e) => {
                setSaved(false);
                setDisplay(e.currentTarget.value);
              }}
            />
          )}
        </Field>
        <ErrorNote error={save.error} />
        <div class="row">
          <button type="submit" disabled={save.busy}>
            <Busy busy={save.busy} label="profile.save" />
          </button>
          <span role="status">{saved && t("profile.saved")}</span>
        </div>
      </form>
    </section>
  );
}

type Passkey = Schemas["PasskeyView"];

function Passkeys() {
  const { t, dateTime } = useI18n();
  const list = useLoad(() => ok(api.GET("/api/auth/passkeys")).then((p) => p.items), []);
  const [name, setName] = useState("");
  const add = useAction();
  const change = useAction();

  const addDevice = (event: Event) => {
    event.preventDefault();
    add.run(async () => {
      const started = await withRecentPasskey(() => ok(api.POST("/api/auth/passkeys/begin")));
      const credential = await webauthn.prompt(
        () => webauthn.create(started.options),
        t("auth.cancelled"),
      );
      await ok(
        api.POST("/api/auth/passkeys/finish", {
          body: {
            ceremony_id: started.ceremony_id,
            credential,
            passkey_name: name.trim() || null,
          },
        }),
      );
      setName("");
      list.reload();
    });
  };

  const rename = (key: Passkey) => {
    const next = window.prompt(t("passkeys.rename_prompt"), key.name)?.trim();
    if (!next || next === key.name) return;
    change.run(async () => {
      await ok(
        api.PATCH("/api/auth/passkeys/{id}", {
          params: { path: { id: key.id } },
          body: { name: next },
        }),
      );
      list.reload();
    });
  };

  const remove = (key: Passkey) => {
    if (!window.confirm(t("passkeys.delete_confirm", { name: key.name }))) return;
    change.run(async () => {
      await ok(api.DELETE("/api/auth/passkeys/{id}", { params: { path: { id: key.id } } }));
      list.reload();
    });
  };

  return (
    <section class="stack">
      <h1>{t("settings.passkeys")}</h1>
      <p class="muted">{t("passkeys.intro")}</p>
      <Listed items={list.data} error={list.error} empty={t("passkeys.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("settings.passkeys")}>
            {items.map((key) => (
              <li key={key.id} class="row spread">
                <div>
                  <strong>{key.name}</strong>
                  <div class="small muted">
                    {t("passkeys.added", { at: dateTime(key.created_at) })}
                    {key.last_used_at &&
                      ` · ${t("passkeys.used", { at: dateTime(key.last_used_at) })}`}
                  </div>
                </div>
                <div class="row">
                  <button type="button" class="secondary" onClick={() => rename(key)}>
                    {t("common.rename")}
                  </button>
                  <button type="button" class="danger" onClick={() => remove(key)}>
                    {t("common.delete")}
                  </button>
                </div>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <ErrorNote error={change.error} />
      <form class="card stack" onSubmit={addDevice}>
        <h2>{t("passkeys.add")}</h2>
        <Field label={t("auth.device")} hint={t("auth.device_hint")}>
          {(id) => <input id={id} value={name} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
        <ErrorNote error={add.error} />
        <button type="submit" disabled={add.busy}>
          <Busy busy={add.busy} label="passkeys.add_button" />
        </button>
      </form>
    </section>
  );
}

function Sessions() {
  const { t, dateTime } = useI18n();
  const list = useLoad(() => ok(api.GET("/api/auth/sessions")).then((p) => p.items), []);
  const change = useAction();
  const [notice, setNotice] = useState<string | null>(null);

  const revoke = (id: string) =>
    change.run(async () => {
      await ok(api.DELETE("/api/auth/sessions/{id}", { params: { path: { id } } }));
      list.reload();
    });
  const revokeOthers = () =>
    change.run(async () => {
      const done = await ok(api.DELETE("/api/auth/sessions"));
      setNotice(t("sessions.revoked", { n: done.revoked }));
      list.reload();
    });

  return (
    <section class="stack">
      <h1>{t("settings.sessions")}</h1>
      <p class="muted">{t("sessions.intro")}</p>
      <Listed items={list.data} error={list.error} empty={t("sessions.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("settings.sessions")}>
            {items.map((s) => (
              <li key={s.id} class="row spread">
                <div>
                  <strong>{s.user_agent || t("sessions.unknown_device")}</strong>
                  {s.current && <span class="badge">{t("sessions.this_one")}</span>}
                  <div class="small muted">
                    {t("sessions.seen", {
                      created: dateTime(s.created_at),
                      seen: dateTime(s.last_seen_at),
                    })}
                  </div>
                </div>
                {!s.current && (
                  <button type="button" class="danger" onClick={() => revoke(s.id)}>
                    {t("sessions.revoke")}
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorNote error={change.error} />
      <button type="button" class="secondary" onClick={revokeOthers} disabled={change.busy}>
        <Busy busy={change.busy} label="sessions.revoke_others" />
      </button>
    </section>
  );
}

type ApiKey = Schemas["ApiKeyView"];

function splitList(text: string): string[] | null {
  const items = text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length ? items : null;
}

function wholeOrNull(text: string): number | null {
  return text.trim() === "" ? null : Number(text);
}

function ApiKeys() {
  const { t, dateTime } = useI18n();
  const list = useLoad(() => ok(api.GET("/api/auth/api-keys")).then((p) => p.items), []);
  const models = useLoad(
    () => ok(api.GET("/api/llm/v1/models")).then((m) => m.data.map((x) => x.id)),
    [],
  );
  const empty = { name: "", scopes: "*", models: [] as string[], rpm: "", tpm: "", days: "" };
  const [form, setForm] = useState(empty);
  const [secret, setSecret] = useState<{ name: string; key: string } | null>(null);
  const create = useAction();
  const change = useAction();

  const submit = (event: Event) => {
    event.preventDefault();
    create.run(async () => {
      const made = await ok(
        api.POST("/api/auth/api-keys", {
          body: {
            name: form.name.trim(),
            scopes: splitList(form.scopes),
            expires_in_days: wholeOrNull(form.days),
            limits: {
              models: form.models.length ? form.models : null,
              requests_per_minute: wholeOrNull(form.rpm),
              tokens_per_minute: wholeOrNull(form.tpm),
            },
          },
        }),
      );
      setSecret({ name: made.name, key: made.key });
      setForm(empty);
      list.reload();
    });
  };

  const revoke = (key: ApiKey) => {
    if (!window.confirm(t("keys.revoke_confirm", { name: key.name }))) return;
    change.run(async () => {
      await ok(api.DELETE("/api/auth/api-keys/{id}", { params: { path: { id: key.id } } }));
      list.reload();
    });
  };

  const toggleModel = (id: string) =>
    setForm({
      ...form,
      models: form.models.includes(id) ? form.models.filter((m) => m !== id) : [...form.models, id],
    });

  return (
    <section class="stack">
      <h1>{t("settings.api_keys")}</h1>
      <p class="muted">{t("keys.intro")}</p>
      {secret && (
        <div class="card stack" role="status">
          <strong>{t("keys.secret_once", { name: secret.name })}</strong>
          <code class="secret">{secret.key}</code>
          <div class="row">
            <button type="button" onClick={() => navigator.clipboard?.writeText(secret.key)}>
              {t("keys.copy")}
            </button>
            <button type="button" class="secondary" onClick={() => setSecret(null)}>
              {t("keys.saved")}
            </button>
          </div>
          <pre class="small">{`curl -H "Authorization: Bearer ${secret.key}" ${location.origin}/api/auth/me`}</pre>
        </div>
      )}
      <Listed items={list.data} error={list.error} empty={t("keys.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("settings.api_keys")}>
            {items.map((k) => (
              <li key={k.id} class="row spread">
                <div>
                  <strong>{k.name}</strong>
                  <div class="small muted">
                    {t("keys.scopes", { scopes: k.scopes.join(", ") })}
                    {k.limits.models &&
                      ` · ${t("keys.models", { models: k.limits.models.join(", ") })}`}
                  </div>
                  <div class="small muted">
                    {t("keys.created", { at: dateTime(k.created_at) })}
                    {k.expires_at && ` · ${t("keys.expires", { at: dateTime(k.expires_at) })}`}
                    {k.last_used_at && ` · ${t("keys.used", { at: dateTime(k.last_used_at) })}`}
                  </div>
                </div>
                <button type="button" class="danger" onClick={() => revoke(k)}>
                  {t("keys.revoke")}
                </button>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <ErrorNote error={change.error} />
      <form class="card stack" onSubmit={submit}>
        <h2>{t("keys.new")}</h2>
        <Field label={t("keys.name")}>
          {(id) => (
            <input
              id={id}
              required
              value={form.name}
              onInput={(e) => setForm({ ...form, name: e.currentTarget.value })}
            />
          )}
        </Field>
        <Field label={t("keys.scopes_label")} hint={t("keys.scopes_hint")}>
          {(id) => (
            <input
              id={id}
              value={form.scopes}
              onInput={(e) => setForm({ ...form, scopes: e.currentTarget.value })}
            />
          )}
        </Field>
        <fieldset>
          <legend>{t("keys.models_label")}</legend>
          <p class="hint">{t("keys.models_hint")}</p>
          {models.error ? <ErrorNote error={models.error} /> : null}
          <div class="row">
            {(models.data ?? []).map((m) => (
              <label key={m} class="check">
                <input
                  type="checkbox"
                  checked={form.models.includes(m)}
                  onChange={() => toggleModel(m)}
                />
                {m}
              </label>
            ))}
          </div>
        </fieldset>
        <div class="row grid3">
          <Field label={t("keys.rpm")}>
            {(id) => (
              <input
                id={id}
                type="number"
                min={1}
                value={form.rpm}
                onInput={(e) => setForm({ ...form, rpm: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field label={t("keys.tpm")}>
            {(id) => (
              <input
                id={id}
                type="number"
                min={1}
                value={form.tpm}
                onInput={(e) => setForm({ ...form, tpm: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field label={t("keys.days")}>
            {(id) => (
              <input
                id={id}
                type="number"
                min={1}
                max={3650}
                value={form.days}
                onInput={(e) => setForm({ ...form, days: e.currentTarget.value })}
              />
            )}
          </Field>
        </div>
        <ErrorNote error={create.error} />
        <button type="submit" disabled={create.busy}>
          <Busy busy={create.busy} label="keys.create" />
        </button>
      </form>
    </section>
  );
}

type Summary = Schemas["Summary"];

/** A summary endpoint answers CSV only when asked for it. */
export function asJson(summary: Summary | string): Summary {
  if (typeof summary === "string") throw new Error("expected JSON, got CSV");
  return summary;
}

type GroupBy = NonNullable<
  NonNullable<
    paths["/api/usage/subjects/{subject}/summary"]["get"]["parameters"]["query"]
  >["group_by"]
>;

/** One subject's usage in total, a row per `groupBy` key. */
export function UsageBreakdown({
  subject,
  groupBy,
  title,
  keyLabel,
}: {
  subject: string;
  groupBy: GroupBy;
  title: string;
  keyLabel: string;
}) {
  const { t, number } = useI18n();
  const money = useMoney();
  const summary = useLoad(
    () =>
      ok(
        api.GET("/api/usage/subjects/{subject}/summary", {
          params: { path: { subject }, query: { group_by: groupBy, granularity: "total" } },
        }),
      ).then(asJson),
    [subject, groupBy],
  );
  return (
    <>
      <h2>{title}</h2>
      <Listed items={summary.data?.items} error={summary.error} empty={t("usage.nothing")}>
        {(items) => (
          <table aria-label={title}>
            <thead>
              <tr>
                <th scope="col">{keyLabel}</th>
                <th scope="col">{t("usage.calls")}</th>
                <th scope="col">{t("usage.tokens")}</th>
                <th scope="col">{t("usage.cost")}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((b) => (
                <tr key={b.key ?? "-"}>
                  <td>{b.key ?? "—"}</td>
                  <td>{number(b.events)}</td>
                  <td>{number(b.tokens_in + b.tokens_out)}</td>
                  <td>{money(b.cost_micros, summary.data?.currency ?? "USD")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Listed>
    </>
  );
}

/** Money in micro-units of `currency`, as the reader writes it. */
export function useMoney() {
  const { number } = useI18n();
  return (micros: number, currency: string) =>
    number(micros / 1_000_000, { style: "currency", currency, maximumFractionDigits: 4 });
}

function Usage() {
  const { t } = useI18n();
  const { user } = useSession();
  const subject = `user:${user?.id ?? ""}`;
  return (
    <section class="stack">
      <h1>{t("settings.usage")}</h1>
      <QuotaCard subject={subject} />
      <UsageBreakdown
        subject={subject}
        groupBy="model"
        title={t("usage.by_model")}
        keyLabel={t("usage.model")}
      />
    </section>
  );
}

/** A person's or agent's month: spent against the budget, this minute's rates. */
export function QuotaCard({ subject, changed = 0 }: { subject: string; changed?: number }) {
  const { t, number } = useI18n();
  const money = useMoney();
  const quota = useLoad(
    () => ok(api.GET("/api/usage/subjects/{subject}/quota", { params: { path: { subject } } })),
    [subject, changed],
  );
  const q = quota.data;
  if (quota.error) return <ErrorNote error={quota.error} />;
  if (!q) return <Loading />;
  return (
    <div class="card stack">
      <h2>{t("usage.budget", { period: q.period })}</h2>
      <p>
        {q.budget_micros_per_month == null
          ? t("usage.spent_unlimited", { spent: money(q.spent_micros, q.currency) })
          : t("usage.spent_of", {
              spent: money(q.spent_micros, q.currency),
              budget: money(q.budget_micros_per_month, q.currency),
            })}
      </p>
      {q.budget_micros_per_month != null && (
        <meter
          min={0}
          max={q.budget_micros_per_month}
          value={q.spent_micros + q.reserved_micros}
          aria-label={t("usage.budget", { period: q.period })}
        />
      )}
      <p class="small muted">
        {t("usage.minute", {
          requests: number(q.requests_this_minute),
          rpm: q.requests_per_minute == null ? "∞" : number(q.requests_per_minute),
          tokens: number(q.tokens_this_minute),
          tpm: q.tokens_per_minute == null ? "∞" : number(q.tokens_per_minute),
        })}
      </p>
    </div>
  );
}
