// MicroDAOs: the communities a person can see (public ones and their own),
// creating one, joining by invitation code, and a community's page with
// its members, joining and leaving, and invitations for its admins.
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, idempotencyKey, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import {
  Busy,
  ErrorNote,
  Field,
  Listed,
  Loading,
  MoreButton,
  useAction,
  useLoad,
  usePaged,
} from "../ui";
import { Filters } from "./filters";
import { Governance } from "./governance";
import { Knowledge } from "./knowledge";
import { CommunityRooms } from "./messenger";
import { HolderSelect, Roles, useRoles } from "./roles";

type Dao = Schemas["DaoView"];

export function Communities() {
  const { t } = useI18n();
  const daos = usePaged(
    (cursor) => ok(api.GET("/api/microdao/daos", { params: { query: { limit: 50, cursor } } })),
    [],
  );
  return (
    <section class="stack">
      <h1>{t("dao.title")}</h1>
      <Listed items={daos.items} error={daos.error} empty={t("dao.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("dao.title")}>
            {items.map((dao) => (
              <li key={dao.slug}>
                <a href={`/communities/${dao.slug}`}>
                  <strong>{dao.name}</strong>
                </a>{" "}
                <span class="muted small">
                  {t(`dao.${dao.visibility}`)} · {t("dao.member_count", { n: dao.members })}
                  {dao.my_role && ` · ${t(`dao.role.${dao.my_role}` as "dao.role.member")}`}
                </span>
                {dao.description && <div class="muted">{dao.description}</div>}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={daos} />
      <NewCommunity />
      <AcceptInvite />
    </section>
  );
}

function NewCommunity() {
  const { t } = useI18n();
  const { route } = useLocation();
  const [form, setForm] = useState({
    slug: "",
    name: "",
    description: "",
    private: false,
    orchestrator: "",
  });
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const dao = await ok(
        api.POST("/api/microdao/daos", {
          params: { header: { "Idempotency-Key": idempotencyKey() } },
          body: {
            slug: form.slug.trim(),
            name: form.name.trim(),
            description: form.description.trim() || null,
            visibility: form.private ? "private" : "public",
            orchestrator: form.orchestrator.trim() || null,
          },
        }),
      );
      route(`/communities/${dao.slug}`);
    });
  };
  return (
    <form class="card stack" onSubmit={submit}>
      <h2>{t("dao.new")}</h2>
      <Field label={t("rooms.slug")} hint={t("rooms.slug_hint")}>
        {(id) => (
          <input
            id={id}
            required
            value={form.slug}
            onInput={(e) => setForm({ ...form, slug: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("rooms.name")}>
        {(id) => (
          <input
            id={id}
            required
            maxLength={80}
            value={form.name}
            onInput={(e) => setForm({ ...form, name: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("rooms.description")}>
        {(id) => (
          <input
            id={id}
            value={form.description}
            onInput={(e) => setForm({ ...form, description: e.currentTarget.value })}
          />
        )}
      </Field>
      <label class="row">
        <input
          type="checkbox"
          checked={form.private}
          onChange={(e) => setForm({ ...form, private: e.currentTarget.checked })}
          style={{ width: "auto" }}
        />
        {t("dao.private_hint")}
      </label>
      <Field label={t("dao.orchestrator")} hint={t("dao.orchestrator_hint")}>
        {(id) => (
          <input
            id={id}
            maxLength={63}
            value={form.orchestrator}
            onInput={(e) => setForm({ ...form, orchestrator: e.currentTarget.value })}
          />
        )}
      </Field>
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="dao.create" />
      </button>
    </form>
  );
}

/** Names the agent that speaks for the community (one of its agents), or none. */
function Orchestrator({ dao, changed }: { dao: Dao; changed: () => void }) {
  const { t } = useI18n();
  const [agent, setAgent] = useState(dao.orchestrator ?? "");
  const { busy, error, run } = useAction();
  const save = (event: Event) => {
    event.preventDefault();
    run(async () => {
      await ok(
        api.PATCH("/api/microdao/daos/{dao}", {
          params: { path: { dao: dao.slug } },
          body: { orchestrator: agent.trim() },
        }),
      );
      changed();
    });
  };
  return (
    <form class="row" aria-label={t("dao.orchestrator")} onSubmit={save}>
      <Field label={t("dao.orchestrator")} hint={t("dao.orchestrator_set_hint")}>
        {(id) => (
          <input
            id={id}
            maxLength={63}
            value={agent}
            onInput={(e) => setAgent(e.currentTarget.value)}
          />
        )}
      </Field>
      <button type="submit" class="secondary" disabled={busy}>
        <Busy busy={busy} label="dao.orchestrator_save" />
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

function AcceptInvite() {
  const { t } = useI18n();
  const { route } = useLocation();
  const [code, setCode] = useState("");
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const joined = await ok(
        api.POST("/api/microdao/invites/accept", { body: { code: code.trim() } }),
      );
      route(`/communities/${joined.dao}`);
    });
  };
  return (
    <form class="card stack" onSubmit={submit}>
      <h2>{t("dao.accept")}</h2>
      <Field label={t("dao.code")}>
        {(id) => (
          <input id={id} required value={code} onInput={(e) => setCode(e.currentTarget.value)} />
        )}
      </Field>
      <ErrorNote error={error} />
      <button type="submit" class="secondary" disabled={busy}>
        <Busy busy={busy} label="dao.join" />
      </button>
    </form>
  );
}

export function Community({ slug }: { slug: string }) {
  const { t } = useI18n();
  const dao = useLoad(
    () => ok(api.GET("/api/microdao/daos/{dao}", { params: { path: { dao: slug } } })),
    [slug],
  );
  const members = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/microdao/daos/{dao}/members", {
          params: { path: { dao: slug }, query: { limit: 50, cursor } },
        }),
      ),
    [slug],
  );
  const roles = useRoles(slug);
  const change = useAction();
  const membership = (path: "join" | "leave") =>
    change.run(async () => {
      await ok(api.POST(`/api/microdao/daos/{dao}/${path}`, { params: { path: { dao: slug } } }));
      dao.reload();
      members.reload();
    });

  const remove = (principal: string) =>
    change.run(async () => {
      await ok(
        api.DELETE("/api/microdao/daos/{dao}/members/{member}", {
          params: { path: { dao: slug, member: principal } },
        }),
      );
      dao.reload();
      members.reload();
    });

  if (dao.error) return <ErrorNote error={dao.error} />;
  if (!dao.data) return <Loading />;
  const it: Dao = dao.data;
  const owner = it.my_role === "owner";
  const admin = owner || it.my_role === "admin";
  // What the caller's custom role adds to their base role.
  const can = (permission: Schemas["DaoPermission"]) => it.my_permissions.includes(permission);
  // Owners remove anyone but owners; admins and `write` holders those below admin.
  const mayRemove = (role: string) =>
    role !== "owner" && (owner || ((admin || can("write")) && role !== "admin"));
  const rolesChanged = () => {
    roles.reload();
    members.reload();
  };
  return (
    <section class="stack">
      <h1>{it.name}</h1>
      <p class="muted">
        {t(`dao.${it.visibility}`)} · {t("dao.member_count", { n: it.members })}
        {it.my_role && ` · ${t(`dao.role.${it.my_role}` as "dao.role.member")}`}
      </p>
      {it.description && <p>{it.description}</p>}
      {it.orchestrator && <p>{t("dao.orchestrator_is", { agent: `agent:${it.orchestrator}` })}</p>}
      {admin && <Orchestrator key={it.orchestrator ?? ""} dao={it} changed={dao.reload} />}
      <ErrorNote error={change.error} />
      <div class="row">
        {!it.my_role && it.visibility === "public" && (
          <button type="button" onClick={() => membership("join")} disabled={change.busy}>
            <Busy busy={change.busy} label="dao.join" />
          </button>
        )}
        {it.my_role && (
          <button
            type="button"
            class="secondary"
            onClick={() => membership("leave")}
            disabled={change.busy}
          >
            <Busy busy={change.busy} label="dao.leave" />
          </button>
        )}
      </div>
      <h2>{t("dao.members")}</h2>
      <Listed items={members.items} error={members.error} empty={t("dao.no_members")}>
        {(items) => (
          <ul class="list card" aria-label={t("dao.members")}>
            {items.map((m) => (
              <li key={m.principal} class="row spread">
                <span>{m.handle}</span>
                <span class="row">
                  <span class="muted small">{t(`dao.role.${m.role}` as "dao.role.member")}</span>
                  {m.custom_role && !owner && <span class="small">{m.custom_role}</span>}
                  {owner && roles.data && roles.data.length > 0 && (
                    <HolderSelect
                      slug={slug}
                      member={m}
                      roles={roles.data}
                      changed={rolesChanged}
                    />
                  )}
                  {mayRemove(m.role) && (
                    <button
                      type="button"
                      class="ghost"
                      aria-label={t("dao.remove_member", { who: m.handle })}
                      onClick={() => remove(m.principal)}
                      disabled={change.busy}
                    >
                      {t("dao.remove")}
                    </button>
                  )}
                </span>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={members} />
      {it.my_role && <CommunityRooms dao={slug} admin={admin || can("write")} />}
      {it.my_role && it.my_role !== "guest" && <Knowledge slug={slug} admin={admin} />}
      {(it.my_role || it.visibility === "public") && (
        <Governance slug={slug} member={Boolean(it.my_role) && it.my_role !== "guest"} />
      )}
      {(admin || can("write")) && <AddAgent slug={slug} added={members.reload} />}
      {(admin || can("invite")) && <NewInvite slug={slug} />}
      {it.my_role && (
        <Roles
          slug={slug}
          roles={roles.data}
          error={roles.error}
          owner={owner}
          changed={rolesChanged}
        />
      )}
      <Treasury slug={slug} mints={owner || can("treasury")} member={Boolean(it.my_role)} />
      {(admin || can("write")) && <Filters scope={{ dao: slug }} />}
    </section>
  );
}

type Member = Schemas["DaoMemberView"];

/** Points: balances, the history of movements, and moving them. */
function Treasury({ slug, mints, member }: { slug: string; mints: boolean; member: boolean }) {
  const { t, dateTime } = useI18n();
  const balances = useLoad(
    () => ok(api.GET("/api/microdao/daos/{dao}/treasury", { params: { path: { dao: slug } } })),
    [slug],
  );
  const movements = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/microdao/daos/{dao}/treasury/movements", {
          params: { path: { dao: slug }, query: { limit: 20, cursor } },
        }),
      ),
    [slug],
  );
  const who = (account: string) =>
    balances.data?.accounts.find((a) => a.account === account)?.handle ??
    (account.startsWith("issued:") ? t("treasury.minted") : account);
  const moved = () => {
    balances.reload();
    movements.reload();
  };
  return (
    <section class="stack" aria-labelledby="treasury">
      <h2 id="treasury">{t("treasury.title")}</h2>
      {balances.error && <ErrorNote error={balances.error} />}
      {balances.data && (
        <>
          <p class="muted">{t("treasury.supply", { n: balances.data.supply })}</p>
          <ul class="list card" aria-label={t("treasury.balances")}>
            {balances.data.accounts.map((a) => (
              <li key={a.account} class="row spread">
                <span>{a.handle ?? a.account}</span>
                <strong>{a.balance}</strong>
              </li>
            ))}
          </ul>
        </>
      )}
      <h3>{t("treasury.history")}</h3>
      <Listed items={movements.items} error={movements.error} empty={t("treasury.none")}>
        {(items) => (
          <ul class="list card" aria-label={t("treasury.history")}>
            {items.map((m) => (
              <li key={m.id}>
                {t("treasury.moved", { from: who(m.from), to: who(m.to), n: m.amount })}
                {m.memo && ` · ${m.memo}`}
                <div class="small muted">{dateTime(m.created_at)}</div>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={movements} />
      {member && <MovePoints slug={slug} mint={false} done={moved} />}
      {mints && <MovePoints slug={slug} mint={true} done={moved} />}
    </section>
  );
}

function MovePoints({ slug, mint, done }: { slug: string; mint: boolean; done: () => void }) {
  const { t } = useI18n();
  const members = useLoad(
    () =>
      ok(
        api.GET("/api/microdao/daos/{dao}/members", {
          params: { path: { dao: slug }, query: { limit: 100 } },
        }),
      ).then((page) => page.items),
    [slug],
  );
  const [form, setForm] = useState({ to: "", amount: "", memo: "" });
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const body = { to: form.to, amount: Number(form.amount), memo: form.memo.trim() || null };
      const params = {
        path: { dao: slug },
        header: { "Idempotency-Key": idempotencyKey() },
      };
      if (mint) await ok(api.POST("/api/microdao/daos/{dao}/treasury/mint", { params, body }));
      else await ok(api.POST("/api/microdao/daos/{dao}/treasury/transfers", { params, body }));
      setForm({ to: "", amount: "", memo: "" });
      done();
    });
  };
  const label = mint ? "treasury.mint" : "treasury.send";
  return (
    <form class="card stack" onSubmit={submit} aria-label={t(label)}>
      <h3>{t(label)}</h3>
      <Field label={t("treasury.to")}>
        {(id) => (
          <select
            id={id}
            required
            value={form.to}
            onChange={(e) => setForm({ ...form, to: e.currentTarget.value })}
          >
            <option value="">—</option>
            <option value={`dao:${slug}`}>{t("treasury.community")}</option>
            {(members.data ?? []).map((m: Member) => (
              <option key={m.principal} value={m.principal}>
                {m.handle}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label={t("treasury.amount")}>
        {(id) => (
          <input
            id={id}
            type="number"
            min={1}
            required
            value={form.amount}
            onInput={(e) => setForm({ ...form, amount: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("treasury.memo")}>
        {(id) => (
          <input
            id={id}
            maxLength={280}
            value={form.memo}
            onInput={(e) => setForm({ ...form, memo: e.currentTarget.value })}
          />
        )}
      </Field>
      <ErrorNote error={error ?? members.error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label={label} />
      </button>
    </form>
  );
}

/** An admin brings in an agent of theirs (its id, as in `agent:<id>`). */
function AddAgent({ slug, added }: { slug: string; added: () => void }) {
  const { t } = useI18n();
  const [agent, setAgent] = useState("");
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      await ok(
        api.POST("/api/microdao/daos/{dao}/agents", {
          params: { path: { dao: slug } },
          body: { agent: agent.trim() },
        }),
      );
      setAgent("");
      added();
    });
  };
  return (
    <form class="card stack" onSubmit={submit}>
      <h2>{t("dao.add_agent")}</h2>
      <Field label={t("dao.agent_id")} hint={t("dao.agent_hint")}>
        {(id) => (
          <input id={id} required value={agent} onInput={(e) => setAgent(e.currentTarget.value)} />
        )}
      </Field>
      <ErrorNote error={error} />
      <button type="submit" class="secondary" disabled={busy}>
        <Busy busy={busy} label="dao.add_agent" />
      </button>
    </form>
  );
}

function NewInvite({ slug }: { slug: string }) {
  const { t } = useI18n();
  const [uses, setUses] = useState("1");
  const [code, setCode] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const made = await ok(
        api.POST("/api/microdao/daos/{dao}/invites", {
          params: { path: { dao: slug } },
          body: { max_uses: Number(uses) },
        }),
      );
      setCode(made.code);
    });
  };
  return (
    <form class="card stack" onSubmit={submit}>
      <h2>{t("dao.invite")}</h2>
      <Field label={t("dao.invite_uses")}>
        {(id) => (
          <input
            id={id}
            type="number"
            min={1}
            max={10000}
            required
            value={uses}
            onInput={(e) => setUses(e.currentTarget.value)}
          />
        )}
      </Field>
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="dao.invite_create" />
      </button>
      {code && (
        <div role="status">
          <p>{t("dao.invite_once")}</p>
          <code class="secret">{code}</code>
        </div>
      )}
    </form>
  );
}
