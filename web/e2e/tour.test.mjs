// Every page, in both languages and both themes: a screenshot of each (in
// out/) and an accessibility scan of each, which must find nothing serious
// or critical (colour contrast included, so both themes are checked).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  screenshot,
  startCity,
  translate,
} from "./harness.mjs";

const PUBLIC = ["/sign-in", "/register", "/recover"];
const SIGNED_IN = [
  "/rooms",
  "/rooms/general",
  "/communities",
  "/messages",
  "/playground",
  "/settings/profile",
  "/settings/passkeys",
  "/settings/recovery",
  "/settings/sessions",
  "/settings/api-keys",
  "/settings/usage",
  "/admin/policies",
  "/admin/usage",
  "/admin/quotas",
  "/admin/config",
  "/admin/invites",
  "/admin/audit",
  "/admin/dead-letters",
];

let city;
let browser;
let admin;
before(async () => {
  city = await startCity();
  browser = await launch();
  admin = await person(browser, { lang: "en" });
  await register(city, admin, "mayor");
});
after(async () => {
  await browser?.close();
  await city?.stop();
});

/** Opens `path` as the page's reader has set language and theme, once it has loaded. */
async function visit(page, path) {
  await page.goto(`${city.url}${path}`);
  await page.locator("main h1").first().waitFor();
  await page.locator("main .spinner").first().waitFor({ state: "detached" });
}

test("the theme toggle switches and remembers the theme", async () => {
  const { page, t } = admin;
  await visit(page, "/rooms");
  const before = await page.locator("html").getAttribute("data-theme");
  await page
    .getByRole("button", { name: t(before === "dark" ? "nav.theme_light" : "nav.theme_dark") })
    .click();
  await page.waitForFunction((was) => document.documentElement.dataset.theme !== was, before);
  const after = await page.locator("html").getAttribute("data-theme");
  await page.reload();
  // The app sets the attribute once it has started.
  await page.waitForFunction((theme) => document.documentElement.dataset.theme === theme, after);
});

for (const lang of ["en", "uk"]) {
  for (const theme of ["light", "dark"]) {
    test(`every page in ${lang}, ${theme}`, async () => {
      const visitor = await person(browser, { lang, theme });
      for (const path of PUBLIC) {
        await visit(visitor.page, path);
        assert.equal(await visitor.page.locator("html").getAttribute("lang"), lang);
        await screenshot(visitor.page, `${path.slice(1).replaceAll("/", "-")}-${lang}-${theme}`);
        await expectNoAccessibilityProblems(visitor.page, `${path} (${lang}, ${theme})`);
      }
      await visitor.context.close();

      const { page } = admin;
      await page.evaluate(
        ([l, th]) => {
          localStorage.setItem("daarion.lang", l);
          localStorage.setItem("daarion.theme", th);
        },
        [lang, theme],
      );
      for (const path of SIGNED_IN) {
        await visit(page, path);
        // The shell sets the theme once it has rendered, which may be just after `visit`.
        await page.waitForFunction((th) => document.documentElement.dataset.theme === th, theme, {
          timeout: 5000,
        });
        await page.getByRole("link", { name: translate(lang, "nav.rooms") }).waitFor();
        await screenshot(page, `${path.slice(1).replaceAll("/", "-")}-${lang}-${theme}`);
        await expectNoAccessibilityProblems(page, `${path} (${lang}, ${theme})`);
      }
    });
  }
}
