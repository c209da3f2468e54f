// The admin console, in each language: a policy saved with a mistake is
// refused with the engine's message beside the file, then fixed; an
// invitation link lets a new person in; usage, audit and dead letters show;
// a webhook tool is registered, edited, turned off and removed, and calls
// are logged; a tool of an MCP server is chosen from the server's list and
// called; a citizen has no console.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MCP_TOKEN, startFakeMcp } from "./fake-mcp.mjs";
import {
  arrived,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  startCity,
  translate,
} from "./harness.mjs";

let city;
let browser;
let root;
let mcp;
before(async () => {
  mcp = await startFakeMcp();
  city = await startCity();
  browser = await launch();
  // The city's first person is its admin.
  root = await person(browser, { lang: "en" });
  await register(city, root, "root");
});
after(async () => {
  await browser?.close();
  await city?.stop();
  await mcp?.stop();
});

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    // The admin reads the console in this language, chosen in the top bar.
    const admin = {};
    before(async () => {
      admin.page = root.page;
      admin.t = (key, params) => translate(lang, key, params);
      await root.page.goto(`${city.url}/rooms`);
      await root.page.getByRole("combobox", { name: root.t("nav.language") }).selectOption(lang);
      await root.page.getByRole("link", { name: admin.t("nav.admin") }).waitFor();
      root.t = admin.t;
    });

    test("a policy with a mistake is refused inline, then fixed", async () => {
      const { page, t } = admin;
      await page.getByRole("link", { name: t("nav.admin") }).click();
      await arrived(page, /\/admin$/);
      const editor = page.locator("textarea.code").first();
      await editor.waitFor();
      const original = await editor.inputValue();
      await editor.fill(`${original}\npermit (principal, action, resource`);
      await page.getByRole("button", { name: t("policies.save") }).click();
      const problem = page.getByRole("alert");
      await problem.waitFor();
      assert.ok(
        ((await problem.textContent()) ?? "").startsWith(t("policies.invalid", { message: "" })),
      );
      assert.equal(await editor.getAttribute("aria-invalid"), "true");
      await expectNoAccessibilityProblems(page, "policies with an error");

      await editor.fill(original);
      await page.getByRole("button", { name: t("policies.save") }).click();
      await page.getByRole("status").waitFor();
      assert.equal(await problem.count(), 0);
      assert.equal(await editor.getAttribute("aria-invalid"), "false");

      // The shipped set (version 0) restored: loaded into the editor, saved anew.
      const versions = page.getByRole("list", { name: t("policies.versions") });
      await versions.getByText(t("policies.in_force")).waitFor();
      await versions.getByRole("button", { name: t("policies.load", { version: 0 }) }).click();
      await page.getByRole("button", { name: t("policies.save") }).click();
      await page.getByRole("status").waitFor();
      const inForce = await (await page.request.get(`${city.url}/api/pdp/policies`)).json();
      const shipped = await (
        await page.request.get(`${city.url}/api/pdp/policies/versions/0`)
      ).json();
      assert.deepEqual(inForce.files, shipped.files);
      assert.ok(inForce.version > 1);
    });

    test("a webhook tool is registered, turned off and removed; calls are logged", async () => {
      const { page, t } = admin;
      await page.goto(`${city.url}/admin/tools`);
      const tools = page.getByRole("table", { name: t("tools.title") });
      await tools.getByText("microdao.members").waitFor();
      const form = page.getByRole("form", { name: t("tools.register") });
      const name = `weather-${lang}.lookup`;
      await form.getByLabel(t("tools.name")).fill(name);
      await form.getByLabel(t("tools.url")).fill("https://tools.example.org/hook");
      await form.getByLabel(t("tools.schema")).fill("{ not json");
      await form.getByRole("button", { name: t("tools.register") }).click();
      await form.getByRole("alert").getByText(t("tools.not_json")).waitFor();
      await form
        .getByLabel(t("tools.schema"))
        .fill('{"type": "object", "properties": {"city": {"type": "string"}}}');
      await form.getByRole("button", { name: t("tools.register") }).click();
      assert.ok(((await form.locator("code.secret").textContent()) ?? "").length >= 40);
      // Edited: a new description, the schema kept.
      await tools.getByRole("button", { name: t("tools.edit_named", { name }) }).click();
      const edit = page.getByRole("form", { name: t("tools.editing", { name }) });
      await edit.getByLabel(t("rooms.description")).fill(`Weather (${lang})`);
      await edit.getByRole("button", { name: t("tools.save") }).click();
      await edit.waitFor({ state: "detached" });
      await tools.getByText(`Weather (${lang})`).waitFor();
      await tools.getByRole("button", { name: t("tools.turn_off_named", { name }) }).click();
      await tools.getByRole("button", { name: t("tools.turn_on_named", { name }) }).waitFor();
      await page.reload();
      await tools.getByRole("button", { name: t("tools.turn_on_named", { name }) }).waitFor();
      // A call shows in the log.
      const called = await page.request.post(`${city.url}/api/toolcore/tools/math.evaluate/call`, {
        data: { arguments: { expression: "6*7" } },
        headers: { origin: city.url },
      });
      assert.equal(called.status(), 200, await called.text());
      await page.reload();
      await page
        .getByRole("table", { name: t("tools.calls") })
        .getByRole("row")
        .filter({ hasText: "math.evaluate" })
        .first()
        .waitFor();
      await expectNoAccessibilityProblems(page, "tools");
      await tools.getByRole("button", { name: t("tools.remove_named", { name }) }).click();
      await tools.getByText(name, { exact: true }).waitFor({ state: "detached" });
    });

    test("a tool of an MCP server is chosen from its list, registered and called", async () => {
      const { page, t } = admin;
      await page.goto(`${city.url}/admin/tools`);
      const tools = page.getByRole("table", { name: t("tools.title") });
      await tools.getByText("microdao.members").waitFor();
      const form = page.getByRole("form", { name: t("tools.register") });
      await form.getByLabel(t("tools.kind")).selectOption("mcp");
      await form.getByLabel(t("tools.mcp_url")).fill(mcp.url);
      await form.getByLabel(t("tools.token")).fill("wrong");
      await form.getByRole("button", { name: t("tools.mcp_list") }).click();
      await form.getByRole("alert").waitFor();
      await form.getByLabel(t("tools.token")).fill(MCP_TOKEN);
      await form.getByRole("button", { name: t("tools.mcp_list") }).click();
      const offered = form.getByRole("list", { name: t("tools.mcp_offered") });
      await offered.getByText("Tomorrow's weather in a city").waitFor();
      await expectNoAccessibilityProblems(page, "an MCP server's tools");
      await offered
        .getByRole("button", { name: t("tools.mcp_use_named", { name: "forecast" }) })
        .click();
      assert.equal(await form.getByLabel(t("tools.remote_name")).inputValue(), "forecast");
      // The tool's own name field (the server's name field is labelled after it).
      const named = form.getByLabel(t("tools.name")).first();
      assert.equal(await named.inputValue(), "mcp.forecast");
      const name = `sky-${lang}.forecast`;
      await named.fill(name);
      await form.getByRole("button", { name: t("tools.register") }).click();
      const row = tools.getByRole("row").filter({ hasText: name });
      await row.getByText(t("tools.mcp")).waitFor();
      await row.getByText("Tomorrow's weather in a city").waitFor();
      const called = await page.request.post(`${city.url}/api/toolcore/tools/${name}/call`, {
        data: { arguments: { city: "Lviv" } },
        headers: { origin: city.url },
      });
      assert.equal(called.status(), 200, await called.text());
      assert.deepEqual((await called.json()).result, { text: "Sunny in Lviv" });
      await tools.getByRole("button", { name: t("tools.remove_named", { name }) }).click();
      await tools.getByText(name, { exact: true }).waitFor({ state: "detached" });
    });

    test("flags and quotas: set, refused when wrong, kept", async () => {
      const { page, t } = admin;
      await page.goto(`${city.url}/admin/config`);
      await page.getByLabel(t("config.key")).fill(`feature.map_${lang}`);
      await page.getByRole("button", { name: t("config.open") }).click();
      await page.getByText(t("config.new")).waitFor();
      const value = page.getByLabel(t("config.value"));
      await value.fill('"yes"');
      await page.getByRole("button", { name: t("config.save") }).click();
      await page.getByRole("alert").filter({ hasText: "true or false" }).waitFor();
      await value.fill("true");
      await page.getByRole("button", { name: t("config.save") }).click();
      // "Version 1 by …": the first version is stored.
      const first = t("config.version", { version: 1, author: "\u0000", at: "" }).split(
        "\u0000",
      )[0];
      await page.getByText(first).waitFor();
      // The list of what is set shows it, and opens it again.
      const set = page.getByRole("list", { name: t("config.set") }).getByRole("listitem");
      const flag = set.filter({ hasText: `feature.map_${lang}` });
      await flag.getByText(t("config.on")).waitFor();
      await expectNoAccessibilityProblems(page, "flags and routing");
      await page.reload();
      await flag.getByRole("button").click();
      assert.equal(await value.inputValue(), "true");
      await value.fill("false");
      await page.getByRole("button", { name: t("config.save") }).click();
      await flag.getByText(t("config.off")).waitFor();

      const me = await (await page.request.get(`${city.url}/api/auth/me`)).json();
      await page.getByRole("link", { name: t("admin.quotas") }).click();
      await page.getByLabel(t("quotas.subject")).fill(`user:${me.user.id}`);
      await page.getByRole("button", { name: t("config.open") }).click();
      await page.getByLabel(t("quotas.requests_per_minute")).fill("100");
      await page.getByRole("button", { name: t("quotas.save") }).click();
      await page.getByText(t("quotas.saved")).waitFor();
      await expectNoAccessibilityProblems(page, "quotas");
      const stored = await page.request.get(`${city.url}/api/control/quotas/user:${me.user.id}`);
      assert.equal((await stored.json()).value.requests_per_minute, 100);
    });

    test("an invitation link lets a person in; usage, audit and dead letters show", async () => {
      const { page, t } = admin;
      await page.goto(`${city.url}/admin/invites`);
      await page.getByRole("button", { name: t("invites.create") }).click();
      const link = (await page.locator("code.secret").first().textContent()) ?? "";
      assert.match(link, /\/register\?invite=inv_/);
      await expectNoAccessibilityProblems(page, "invitations");

      const guest = await person(browser, { lang });
      await guest.page.goto(link);
      await guest.page.getByLabel(guest.t("auth.invite")).waitFor();
      await guest.page.getByLabel(guest.t("auth.username")).fill(`guest-${lang}`);
      await guest.page.getByRole("button", { name: guest.t("auth.register.button") }).click();
      await arrived(guest.page, /\/settings\/recovery\?welcome=1$/);
      // A citizen has no console, and the server refuses one anyway.
      assert.equal(await guest.page.getByRole("link", { name: guest.t("nav.admin") }).count(), 0);
      await guest.page.goto(`${city.url}/admin/audit`);
      await guest.page.getByRole("alert").waitFor();
      await guest.context.close();

      await page.getByRole("link", { name: t("admin.usage") }).click();
      await page
        .getByRole("img", { name: t("usage.chart", { n: 0 }).split(" ")[0] })
        .or(page.locator(".chart svg"))
        .waitFor();
      const csv = await page.getByRole("link", { name: t("usage.csv") }).getAttribute("href");
      const exported = await page.request.get(`${city.url}${csv}`);
      assert.equal(exported.status(), 200);
      assert.match(exported.headers()["content-type"], /text\/csv/);
      await expectNoAccessibilityProblems(page, "usage");

      await page.getByRole("link", { name: t("admin.audit") }).click();
      // Newest first: the invitation made above is there.
      await page.getByRole("row").nth(1).waitFor();
      // Actors are shown by username, not account id.
      await page.getByRole("cell", { name: "root", exact: true }).first().waitFor();
      await expectNoAccessibilityProblems(page, "audit");

      await page.getByRole("link", { name: t("admin.dead_letters") }).click();
      await page.getByText(t("dead.empty")).waitFor();
    });
  });
}
