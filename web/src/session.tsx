// Who is signed in: loaded once from `/api/auth/me`, cleared when any call
// or socket learns that the session has ended.
import { type ComponentChildren, createContext } from "preact";
import { useCallback, useContext, useEffect, useMemo, useState } from "preact/hooks";
import { ApiFailure, api, ok, onUnauthorized, type Schemas } from "./api/client";
import { onSignedOut } from "./live";

export type User = Schemas["UserView"];

interface Session {
  /** `undefined` while loading, `null` when signed out. */
  user: User | null | undefined;
  signedIn: (user: User) => void;
  signOut: () => Promise<void>;
}

const Context = createContext<Session | null>(null);

export function SessionProvider({ children }: { children: ComponentChildren }) {
  const [user, setUser] = useState<User | null | undefined>(undefined);

  useEffect(() => {
    ok(api.GET("/api/auth/me"))
      .then((me) => setUser(me.user ?? null))
      .catch((error) => {
        if (!(error instanceof ApiFailure) || error.status !== 401) console.error(error);
        setUser(null);
      });
    const off = [onUnauthorized(() => setUser(null)), onSignedOut(() => setUser(null))];
    return () => {
      for (const f of off) f();
    };
  }, []);

  const signOut = useCallback(async () => {
    await ok(api.POST("/api/auth/logout"));
    setUser(null);
  }, []);

  const value = useMemo(() => ({ user, signedIn: setUser, signOut }), [user, signOut]);
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

export function useSession(): Session {
  const value = useContext(Context);
  if (!value) throw new Error("useSession outside SessionProvider");
  return value;
}
