// Some changes (a new passkey, new recovery codes) need a passkey proved in
// the last few minutes: when the server asks for it, prove it and retry once.
import { ApiFailure, api, ok } from "./api/client";
import * as webauthn from "./webauthn";

export async function withRecentPasskey<D>(action: () => Promise<D>): Promise<D> {
  try {
    return await action();
  } catch (e) {
    if (!(e instanceof ApiFailure) || e.code !== "reauthentication_required") throw e;
  }
  const started = await ok(api.POST("/api/auth/reauth/begin"));
  const credential = await webauthn.get(started.options);
  await ok(
    api.POST("/api/auth/reauth/finish", {
      body: { ceremony_id: started.ceremony_id, credential },
    }),
  );
  return action();
}
