// Signing up, in and back in: passkeys only. Sign-in offers saved passkeys
// in the username field's autofill (conditional mediation) and, for
// browsers without it, a button.

import { useEffect, useRef, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { ApiFailure, api, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { useSession } from "../session";
import { Busy, ErrorNote, Field, useAction } from "../ui";
import * as webauthn from "../webauthn";

/** Where to go after signing in: the page that sent the person here, or the rooms. */
function nextPath(query: Record<string, string>): string {
  const next = query.next;
  return next?.startsWith("/") && !next.startsWith("//") ? next : "/rooms";
}

function PasskeyUnsupported() {
  const { t } = useI18n();
  return webauthn.supported() ? null : <p class="error">{t("auth.unsupported")}</p>;
}

export function SignIn() {
  const { t } = useI18n();
  const { signedIn } = useSession();
  const { route, query } = useLocation();
  const [username, setUsername] = useState("");
  const { busy, error, run, setError } = useAction();
  const autofill = useRef<AbortController | null>(null);

  const finish = async (ceremonyId: string, credential: webauthn.CredentialJson) => {
    const done = await ok(
      api.POST("/api/auth/login/finish", {
        body: { ceremony_id: ceremonyId, credential },
      }),
    );
    signedIn(done.user);
    route(nextPath(query), true);
  };

  // Offer passkeys in the username field's autofill while the page is open.
  useEffect(() => {
    let stopped = false;
    (async () => {
      if (!(await webauthn.autofillAvailable()) || stopped) return;
      const controller = new AbortController();
      autofill.current = controller;
      try {
        const started = await ok(api.POST("/api/auth/login/begin", { body: {} }));
        const credential = await webauthn.get(started.options, {
          conditional: true,
          signal: controller.signal,
        });
        await finish(started.ceremony_id, credential);
      } catch (e) {
        if (!webauthn.cancelled(e) && !controller.signal.aborted) setError(e);
      }
    })();
    return () => {
      stopped = true;
      autofill.current?.abort();
    };
  }, []);

  const submit = (event: Event) => {
    event.preventDefault();
    autofill.current?.abort();
    run(async () => {
      const name = username.trim();
      const started = await ok(
        api.POST("/api/auth/login/begin", { body: name ? { username: name } : {} }),
      );
      const credential = await webauthn.prompt(
        () => webauthn.get(started.options),
        t("auth.cancelled"),
      );
      await finish(started.ceremony_id, credential);
    });
  };

  return (
    <section class="narrow card stack">
      <h1>{t("auth.sign_in.title")}</h1>
      <PasskeyUnsupported />
      <form class="stack" onSubmit={submit}>
        <Field label={t("auth.username")} hint={t("auth.sign_in.username_hint")}>
          {(id) => (
            <input
              id={id}
              name="username"
              autocomplete="username webauthn"
              value={username}
              onInput={(e) => setUsername(e.currentTarget.value)}
            />
          )}
        </Field>
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          <Busy busy={busy} label="auth.sign_in.button" />
        </button>
      </form>
      <p>
        {t("auth.sign_in.new_here")} <a href="/register">{t("auth.register.link")}</a>
      </p>
      <p class="small">
        <a href="/recover">{t("auth.recover.link")}</a>
      </p>
    </section>
  );
}

export function Register() {
  const { t } = useI18n();
  const { signedIn } = useSession();
  const { route, query } = useLocation();
  const [form, setForm] = useState({
    username: "",
    display: "",
    invite: query.invite ?? "",
    device: "",
  });
  const [needsInvite, setNeedsInvite] = useState(Boolean(query.invite));
  const { busy, error, run } = useAction();
  const set = (field: keyof typeof form) => (e: Event) =>
    setForm({ ...form, [field]: (e.currentTarget as HTMLInputElement).value });

  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      let started: Schemas["CeremonyStarted"];
      try {
        started = await ok(
          api.POST("/api/auth/register/begin", {
            body: {
              username: form.username.trim(),
              display_name: form.display.trim() || null,
              invite: form.invite.trim() || null,
            },
          }),
        );
      } catch (e) {
        if (e instanceof ApiFailure && e.status === 403) setNeedsInvite(true);
        throw e;
      }
      const credential = await webauthn.prompt(
        () => webauthn.create(started.options),
        t("auth.cancelled"),
      );
      const done = await ok(
        api.POST("/api/auth/register/finish", {
          body: {
            ceremony_id: started.ceremony_id,
            credential,
            passkey_name: form.device.trim() || null,
          },
        }),
      );
      signedIn(done.user);
      route("/settings/recovery?welcome=1", true);
    });
  };

  return (
    <section class="narrow card stack">
      <h1>{t("auth.register.title")}</h1>
      <p class="muted">{t("auth.register.intro")}</p>
      <PasskeyUnsupported />
      <form class="stack" onSubmit={submit}>
        <Field label={t("auth.username")} hint={t("auth.register.username_hint")}>
          {(id) => (
            <input
              id={id}
              name="username"
              required
              autocomplete="username"
              value={form.username}
              onInput={set("username")}
            />
          )}
        </Field>
        <Field label={t("auth.display_name")}>
          {(id) => (
            <input id={id} autocomplete="name" value={form.display} onInput={set("display")} />
          )}
        </Field>
        <Field label={t("auth.device")} hint={t("auth.device_hint")}>
          {(id) => <input id={id} value={form.device} onInput={set("device")} />}
        </Field>
        {needsInvite && (
          <Field label={t("auth.invite")} hint={t("auth.invite_hint")}>
            {(id) => <input id={id} required value={form.invite} onInput={set("invite")} />}
          </Field>
        )}
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          <Busy busy={busy} label="auth.register.button" />
        </button>
      </form>
      <p>
        {t("auth.register.have_account")} <a href="/sign-in">{t("auth.sign_in.link")}</a>
      </p>
    </section>
  );
}

export function Recover() {
  const { t } = useI18n();
  const { signedIn } = useSession();
  const { route } = useLocation();
  const [username, setUsername] = useState("");
  const [code, setCode] = useState("");
  const { busy, error, run } = useAction();

  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const started = await ok(
        api.POST("/api/auth/recover/begin", {
          body: { username: username.trim(), code: code.trim() },
        }),
      );
      const credential = await webauthn.prompt(
        () => webauthn.create(started.options),
        t("auth.cancelled"),
      );
      const done = await ok(
        api.POST("/api/auth/recover/finish", {
          body: {
            ceremony_id: started.ceremony_id,
            credential,
          },
        }),
      );
      signedIn(done.user);
      route("/settings/recovery", true);
    });
  };

  return (
    <section class="narrow card stack">
      <h1>{t("auth.recover.title")}</h1>
      <p class="muted">{t("auth.recover.intro")}</p>
      <form class="stack" onSubmit={submit}>
        <Field label={t("auth.username")}>
          {(id) => (
            <input
              id={id}
              required
              autocomplete="username"
              value={username}
              onInput={(e) => setUsername(e.currentTarget.value)}
            />
          )}
        </Field>
        <Field label={t("auth.recover.code")}>
          {(id) => (
            <input
              id={id}
              required
              autocomplete="one-time-code"
              value={code}
              onInput={(e) => setCode(e.currentTarget.value)}
            />
          )}
        </Field>
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          <Busy busy={busy} label="auth.recover.button" />
        </button>
      </form>
    </section>
  );
}
