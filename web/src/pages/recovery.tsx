// Recovery codes: how many are left, and new ones shown exactly once, to
// download or print.
import { useState } from "preact/hooks";
import { api, ok } from "../api/client";
import { useI18n } from "../i18n";
import { withRecentPasskey } from "../reauth";
import { Busy, ErrorNote, Loading, useAction, useLoad } from "../ui";

export function RecoveryCodes({ welcome }: { welcome: boolean }) {
  const { t } = useI18n();
  const status = useLoad(() => ok(api.GET("/api/auth/recovery-codes")), []);
  const [codes, setCodes] = useState<string[] | null>(null);
  const { busy, error, run } = useAction();

  const generate = () =>
    run(async () => {
      const fresh = await withRecentPasskey(() => ok(api.POST("/api/auth/recovery-codes")));
      setCodes(fresh.codes);
      status.setData({ remaining: fresh.codes.length });
    });

  const download = () => {
    const text = `${t("recovery.file_heading", { host: location.host })}\n\n${(codes ?? []).join("\n")}\n`;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = `daarion-recovery-codes-${location.hostname}.txt`;
    link.click();
    URL.revokeObjectURL(link.href);
  };

  return (
    <section class="stack">
      {welcome && (
        <div class="notice" role="status">
          {t("recovery.welcome")}
        </div>
      )}
      <h1>{t("recovery.title")}</h1>
      <p class="muted">{t("recovery.intro")}</p>
      <ErrorNote error={status.error} />
      {status.data === undefined && !status.error ? (
        <Loading />
      ) : (
        status.data && <p>{t("recovery.remaining", { n: status.data.remaining })}</p>
      )}
      {codes ? (
        <div class="card stack">
          <p class="notice" role="status">
            {t("recovery.shown_once")}
          </p>
          <ol class="codes" aria-label={t("recovery.title")}>
            {codes.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ol>
          <div class="row no-print">
            <button type="button" onClick={download}>
              {t("recovery.download")}
            </button>
            <button type="button" class="secondary" onClick={() => window.print()}>
              {t("recovery.print")}
            </button>
            <a class="button secondary" href="/rooms">
              {t("recovery.done")}
            </a>
          </div>
        </div>
      ) : (
        <div class="row">
          <button type="button" onClick={generate} disabled={busy}>
            <Busy busy={busy} label="recovery.generate" />
          </button>
          {welcome && (
            <a class="button secondary" href="/rooms">
              {t("recovery.later")}
            </a>
          )}
        </div>
      )}
      <ErrorNote error={error} />
    </section>
  );
}
