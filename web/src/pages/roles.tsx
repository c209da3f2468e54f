// A community's own roles: what each grants (from the permissions the
// policies know), who holds it, and, for its owners, defining, deleting
// and giving them.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { Busy, ErrorNote, Field, Listed, useAction, useLoad } from "../ui";

type Role = Schemas["CustomRoleView"];
type Permission = Schemas["DaoPermission"];
type Member = Schemas["DaoMemberView"];

const PERMISSIONS: Permission[] = ["write", "invite", "rooms", "treasury"];

/** The community's custom roles (a community has at most 50). */
export function useRoles(slug: string) {
  return useLoad(
    () =>
      ok(
        api.GET("/api/microdao/daos/{dao}/roles", {
          params: { path: { dao: slug }, query: { limit: 50 } },
        }),
      ).then((page) => page.items),
    [slug],
  );
}

export function Roles({
  slug,
  roles,
  error,
  owner,
  changed,
}: {
  slug: string;
  roles: Role[] | undefined;
  error: unknown;
  owner: boolean;
  changed: () => void;
}) {
  const { t } = useI18n();
  const remove = useAction();
  const drop = (name: string) =>
    remove.run(async () => {
      await ok(
        api.DELETE("/api/microdao/daos/{dao}/roles/{role}", {
          params: { path: { dao: slug, role: name } },
        }),
      );
      changed();
    });
  return (
    <section class="stack" aria-labelledby="roles">
      <h2 id="roles">{t("roles.title")}</h2>
      <Listed items={roles} error={error} empty={t("roles.none")}>
        {(items) => (
          <ul class="list card" aria-label={t("roles.title")}>
            {items.map((role) => (
              <li key={role.name} class="row spread">
                <span>
                  <strong>{role.name}</strong>{" "}
                  <span class="muted small">{t("roles.holders", { n: role.holders })}</span>
                  {role.description && <div class="muted">{role.description}</div>}
                  <div class="small">
                    {role.permissions.map((p) => t(`roles.perm.${p}`)).join(" · ") ||
                      t("roles.nothing")}
                  </div>
                </span>
                {owner && (
                  <button
                    type="button"
                    class="ghost"
                    aria-label={t("roles.delete_named", { name: role.name })}
                    onClick={() => drop(role.name)}
                    disabled={remove.busy}
                  >
                    {t("common.delete")}
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <ErrorNote error={remove.error} />
      {owner && <DefineRole slug={slug} defined={changed} />}
    </section>
  );
}

/** Defines a role, or redefines one of the same name. */
function DefineRole({ slug, defined }: { slug: string; defined: () => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState({ name: "", description: "", permissions: [] as Permission[] });
  const { busy, error, run } = useAction();
  const toggle = (permission: Permission, on: boolean) =>
    setForm({
      ...form,
      permissions: on
        ? [...form.permissions, permission]
        : form.permissions.filter((p) => p !== permission),
    });
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      await ok(
        api.PUT("/api/microdao/daos/{dao}/roles/{role}", {
          params: { path: { dao: slug, role: form.name.trim() } },
          body: { description: form.description.trim() || null, permissions: form.permissions },
        }),
      );
      setForm({ name: "", description: "", permissions: [] });
      defined();
    });
  };
  return (
    <form class="card stack" onSubmit={submit} aria-label={t("roles.define")}>
      <h3>{t("roles.define")}</h3>
      <Field label={t("roles.name")} hint={t("roles.name_hint")}>
        {(id) => (
          <input
            id={id}
            required
            pattern="[a-z0-9][a-z0-9\-]{1,31}"
            value={form.name}
            onInput={(e) => setForm({ ...form, name: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("rooms.description")}>
        {(id) => (
          <input
            id={id}
            maxLength={2000}
            value={form.description}
            onInput={(e) => setForm({ ...form, description: e.currentTarget.value })}
          />
        )}
      </Field>
      <fieldset class="stack">
        <legend>{t("roles.permissions")}</legend>
        {PERMISSIONS.map((p) => (
          <div key={p}>
            <label class="check">
              <input
                type="checkbox"
                checked={form.permissions.includes(p)}
                onChange={(e) => toggle(p, e.currentTarget.checked)}
              />
              {t(`roles.perm.${p}`)}
            </label>
          </div>
        ))}
      </fieldset>
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="roles.save" />
      </button>
    </form>
  );
}

/** An owner gives a member one custom role, or none. */
export function HolderSelect({
  slug,
  member,
  roles,
  changed,
}: {
  slug: string;
  member: Member;
  roles: Role[];
  changed: () => void;
}) {
  const { t } = useI18n();
  const { busy, error, run } = useAction();
  const choose = (name: string) =>
    run(async () => {
      const path = { dao: slug, member: member.principal };
      if (name) {
        await ok(
          api.PUT("/api/microdao/daos/{dao}/roles/{role}/holders/{member}", {
            params: { path: { ...path, role: name } },
          }),
        );
      } else if (member.custom_role) {
        await ok(
          api.DELETE("/api/microdao/daos/{dao}/roles/{role}/holders/{member}", {
            params: { path: { ...path, role: member.custom_role } },
          }),
        );
      }
      changed();
    });
  return (
    <>
      <select
        aria-label={t("roles.of", { who: member.handle })}
        value={member.custom_role ?? ""}
        disabled={busy}
        onChange={(e) => choose(e.currentTarget.value)}
      >
        <option value="">{t("roles.no_role")}</option>
        {roles.map((r) => (
          <option key={r.name} value={r.name}>
            {r.name}
          </option>
        ))}
      </select>
      <ErrorNote error={error} />
    </>
  );
}
