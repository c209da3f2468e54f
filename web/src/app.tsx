// The shell: top bar (navigation, language, theme, sign-out), the router,
// and the presence socket that keeps a signed-in person present.

import type { ComponentChildren, JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { LANGS, useI18n } from "./i18n";
import { Admin } from "./pages/admin";
import { Recover, Register, SignIn } from "./pages/auth";
import { Presence, RoomPage, Rooms, usePresence } from "./pages/city";
import { Communities, Community } from "./pages/communities";
import { AgentPage, Citizen, Feed } from "./pages/feed";
import { ProposalPage } from "./pages/governance";
import { Hub, HubAgent } from "./pages/hub";
import { LivingMap } from "./pages/livingmap";
import { CityMapPage } from "./pages/map";
import { ChatRoomPage, Messenger } from "./pages/messenger";
import { Playground } from "./pages/playground";
import { SecondMe } from "./pages/secondme";
import { Settings } from "./pages/settings";
import { NodePage, NodeRegistry, PlanetPage, SpaceDirectory } from "./pages/space";
import { useSession } from "./session";
import { ErrorNote, Loading } from "./ui";

type Theme = "light" | "dark";
const THEME = "daarion.theme";

function useTheme(): [Theme, (theme: Theme) => void] {
  const [theme, setTheme] = useState<Theme>(() => {
    const saved = localStorage.getItem(THEME);
    if (saved === "light" || saved === "dark") return saved;
    return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  });
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  return [
    theme,
    (next) => {
      localStorage.setItem(THEME, next);
      setTheme(next);
    },
  ];
}

function TopBar() {
  const { t, lang, setLang } = useI18n();
  const { user, signOut } = useSession();
  const { path, route } = useLocation();
  const [theme, setTheme] = useTheme();
  const [error, setError] = useState<unknown>(null);
  const link = (href: string, label: string) => (
    <a href={href} aria-current={path === href || path.startsWith(`${href}/`) ? "page" : undefined}>
      {label}
    </a>
  );
  return (
    <header class="topbar">
      <a class="brand" href="/">
        DAARION
      </a>
      <nav aria-label={t("nav.main")}>
        {link("/city", t("nav.map"))}
        {link("/feed", t("nav.feed"))}
        {link("/space", t("nav.space"))}
        {link("/rooms", t("nav.rooms"))}
        {user && link("/messages", t("nav.messages"))}
        {user && link("/communities", t("nav.communities"))}
        {user && link("/living-map", t("nav.livemap"))}
        {user && link("/hub", t("nav.hub"))}
        {user && link("/second-me", t("nav.secondme"))}
        {user && link("/playground", t("nav.playground"))}
        {user && link("/settings", t("nav.settings"))}
        {user?.city_role === "admin" && link("/admin", t("nav.admin"))}
        {user === null && link("/sign-in", t("nav.sign_in"))}
      </nav>
      <div class="tools">
        <label class="skip" for="lang">
          {t("nav.language")}
        </label>
        <select
          id="lang"
          value={lang}
          onChange={(e) => setLang(e.currentTarget.value as typeof lang)}
          style={{ width: "auto" }}
        >
          {LANGS.map((l) => (
            <option key={l} value={l}>
              {t(`lang.${l}`)}
            </option>
          ))}
        </select>
        <button
          type="button"
          class="ghost"
          aria-pressed={theme === "dark"}
          onClick={() => setTheme(theme === "dark" ? "light" : "dark")}
        >
          {t(theme === "dark" ? "nav.theme_light" : "nav.theme_dark")}
        </button>
        {user && (
          <>
            <span class="small muted">{user.display_name}</span>
            <button
              type="button"
              class="secondary"
              onClick={() =>
                signOut().then(
                  () => route("/sign-in"),
                  (e) => setError(e),
                )
              }
            >
              {t("nav.sign_out")}
            </button>
          </>
        )}
      </div>
      <ErrorNote error={error} />
    </header>
  );
}

/**
 * A page for signed-in people: others are sent to sign in, and back
 * afterwards. Made once per page at module level, so that a re-render of
 * the shell never remounts the page (and loses what is typed in it).
 */
function privately<P extends object>(Page: (props: P) => JSX.Element) {
  return function Guarded(props: P) {
    const { user } = useSession();
    const { path, route } = useLocation();
    useEffect(() => {
      if (user === null) route(`/sign-in?next=${encodeURIComponent(path)}`, true);
    }, [user, path, route]);
    return user ? <Page {...props} /> : <Loading />;
  };
}

// The city's public pages: anyone may read them while the city allows it.
const CitizenRoute = ({ username }: { username: string }) => <Citizen username={username} />;
const AgentRoute = ({ id }: { id: string }) => <AgentPage id={id} />;
const PlanetRoute = ({ slug }: { slug: string }) => <PlanetPage slug={slug} />;
const NodesRoute = privately(NodeRegistry);
const NodeRoute = privately(({ id }: { id: string }) => <NodePage id={id} />);
const RoomRoute = ({ slug }: { slug: string }) => <RoomPage slug={slug} />;
const MessengerRoute = privately(Messenger);
const ChatRoute = privately(({ room }: { room: string }) => <ChatRoomPage room={room} />);
const PlaygroundRoute = privately(Playground);
const SecondMeRoute = privately(({ conversation }: { conversation?: string }) => (
  <SecondMe conversation={conversation} />
));
const CommunitiesRoute = privately(Communities);
const HubRoute = privately(Hub);
const HubAgentRoute = privately(({ slug }: { slug: string }) => <HubAgent slug={slug} />);
const CommunityRoute = privately(({ slug }: { slug: string }) => <Community slug={slug} />);
const LivingMapRoute = privately(LivingMap);
const ProposalRoute = privately(({ id }: { id: string }) => <ProposalPage id={id} />);
const SettingsRoute = privately(({ section }: { section?: string }) => {
  const { query } = useLocation();
  return <Settings section={section ?? "profile"} welcome={query.welcome === "1"} />;
});
const AdminRoute = privately(({ section }: { section?: string }) => (
  <Admin section={section ?? "policies"} />
));

/** Keeps the signed-in person present in the city, for every page to see who else is. */
function PresenceProvider({ children }: { children: ComponentChildren }) {
  return <Presence.Provider value={usePresence()}>{children}</Presence.Provider>;
}

function Home() {
  const { user } = useSession();
  const { route } = useLocation();
  useEffect(() => {
    if (user !== undefined) route(user ? "/rooms" : "/sign-in", true);
  }, [user, route]);
  return <Loading />;
}

function NotFound() {
  const { t } = useI18n();
  return (
    <section class="narrow card">
      <h1>{t("notfound.title")}</h1>
      <a href="/">{t("notfound.home")}</a>
    </section>
  );
}

function Pages() {
  const { t } = useI18n();
  const { user } = useSession();
  useEffect(() => {
    document.title = "DAARION";
  }, []);
  if (user === undefined) return <Loading />;
  return (
    <PresenceProvider>
      <a class="skip" href="#main">
        {t("nav.skip")}
      </a>
      <div class="shell">
        <TopBar />
        <main id="main">
          <Router>
            <Route path="/" component={Home} />
            <Route path="/sign-in" component={SignIn} />
            <Route path="/register" component={Register} />
            <Route path="/recover" component={Recover} />
            <Route path="/city" component={CityMapPage} />
            <Route path="/feed" component={Feed} />
            <Route path="/people/:username" component={CitizenRoute} />
            <Route path="/space" component={SpaceDirectory} />
            <Route path="/space/planets/:slug" component={PlanetRoute} />
            <Route path="/space/nodes" component={NodesRoute} />
            <Route path="/space/nodes/:id" component={NodeRoute} />
            <Route path="/agents/:id" component={AgentRoute} />
            <Route path="/hub" component={HubRoute} />
            <Route path="/hub/:slug" component={HubAgentRoute} />
            <Route path="/rooms" component={Rooms} />
            <Route path="/rooms/:slug" component={RoomRoute} />
            <Route path="/messages" component={MessengerRoute} />
            <Route path="/messages/:room" component={ChatRoute} />
            <Route path="/communities" component={CommunitiesRoute} />
            <Route path="/communities/:slug" component={CommunityRoute} />
            <Route path="/proposals/:id" component={ProposalRoute} />
            <Route path="/living-map" component={LivingMapRoute} />
            <Route path="/playground" component={PlaygroundRoute} />
            <Route path="/second-me" component={SecondMeRoute} />
            <Route path="/second-me/:conversation" component={SecondMeRoute} />
            <Route path="/settings" component={SettingsRoute} />
            <Route path="/settings/:section" component={SettingsRoute} />
            <Route path="/admin" component={AdminRoute} />
            <Route path="/admin/:section" component={AdminRoute} />
            <Route default component={NotFound} />
          </Router>
        </main>
      </div>
    </PresenceProvider>
  );
}

export function App() {
  return (
    <LocationProvider>
      <Pages />
    </LocationProvider>
  );
}
