/**
 * The portal in a real browser (Debian's Chromium through playwright-core) against the sandbox stack: the
 * portal on its own origin, MSAL's authorization code + PKCE against the local issuer, the API over CORS, the
 * download straight from Blob Storage (Azurite) through a user-delegation SAS.
 *
 * Skips with a message when Chromium is absent, except in CI (CI=true), where that fails.
 * `PORTAL_SCREENSHOTS=docs/screenshots npx vitest run test/portal` also saves the pages for the README.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startLocalStack, type LocalStack } from '../../dev/stack.js';
import { startEmbeddedSource, type EmbeddedSource } from '../../dev/embedded-source.js';
import { buildPortal } from '../../portal/build.js';

type Json = Record<string, any>;

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(chromiumPath);
const screenshotDir = process.env.PORTAL_SCREENSHOTS;
if (!hasChromium && process.env.CI !== 'true') {
  console.warn(`[portal browser tests] skipped: no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`);
}

/** Flags for a headless browser on a closed network (see /usr/bin/chromium; no browser download). */
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let stack: LocalStack;
let source: EmbeddedSource;
let browser: Browser;
let portal: string;
let serverId: string;
let databaseId: string;
let aliceJobId: string;

describe.skipIf(!hasChromium && process.env.CI !== 'true')('portal in Chromium', () => {
  beforeAll(async () => {
    if (!hasChromium) throw new Error(`CI=true and no Chromium at ${chromiumPath}: .ci/run installs Debian's chromium`);
    const dist = await buildPortal({ minify: false });
    [stack, source] = await Promise.all([startLocalStack({ portal: { dist } }), startEmbeddedSource({ customers: 200 })]);
    portal = stack.portalOrigin!;
    const server = await stack.api<Json>('POST', '/api/servers', { token: stack.tokens.admin, body: { name: 'embedded-demo', host: 'embedded', engine: 'postgres' } });
    expect(server.status).toBe(201);
    serverId = server.body.id;
    const database = await stack.api<Json>('POST', `/api/servers/${serverId}/databases`, {
      token: stack.tokens.admin,
      body: { name: source.databaseName, requesterGroupIds: [stack.requesterGroupId] },
    });
    expect(database.status).toBe(201);
    databaseId = database.body.id;
    await stack.startRunner({ serverId, engine: source.engine });
    // Playwright gives every launch a fresh temporary profile (user-data-dir).
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await source?.close();
  });

  /** A fresh browser context (no MSAL cache), signed in through the local issuer's page as `user`. */
  async function signIn(user: string): Promise<Page> {
    // The stand-ins' loopback certificate is self-signed; the portal's own origin is plain loopback HTTP.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    await page.goto(`${portal}/`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${stack.issuer.baseUrl}/**`);
    await page.getByRole('button', { name: new RegExp(`^${user}\\b`) }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    expect(new URL(page.url()).origin).toBe(portal);
    return page;
  }

  async function expectNoSeriousA11yViolations(page: Page, name: string) {
    // Evaluated through the DevTools protocol, so the portal's CSP (script-src 'self') need not be loosened.
    await page.evaluate(axeSource);
    // Strings run in the page (this file is compiled without the DOM library).
    const violations = (await page.evaluate(
      `axe.run().then((result) => result.violations.map(({ id, impact, nodes }) => ({ id, impact, nodes: nodes.length })))`,
    )) as { id: string; impact: string; nodes: number }[];
    expect(violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical'), name).toEqual([]);
  }

  async function screenshot(page: Page, name: string) {
    if (!screenshotDir) return;
    mkdirSync(screenshotDir, { recursive: true });
    await page.screenshot({ path: `${screenshotDir}/${name}.png`, fullPage: true });
  }

  it('greets a signed-out visitor with a sign-in page that passes the accessibility scan', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${portal}/`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await expectNoSeriousA11yViolations(page, 'sign-in page');
    await page.context().close();
  });

  it('alice requests a backup, watches it become Available, downloads it, and its SHA-256 matches the one shown', async () => {
    const page = await signIn('alice');
    // An API without the requester catalogue (GET /api/databases) makes the form ask for the id instead.
    const catalogue = page.getByLabel('Database', { exact: true });
    const idField = page.getByLabel('Database id');
    await catalogue.or(idField).waitFor();
    if (await idField.isVisible()) await idField.fill(databaseId);
    else await expect.poll(() => catalogue.inputValue()).toBe(databaseId);
    await page.getByLabel('Reason (shown in the audit trail)').fill('browser test');
    await page.getByRole('button', { name: 'Request backup' }).click();
    const row = page.locator('tr[data-job-id]').first();
    await row.getByText('Available', { exact: true }).waitFor({ timeout: 90_000 });
    aliceJobId = (await row.getAttribute('data-job-id'))!;

    const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: /^Download/ }).click()]);
    const file = readFileSync((await download.path())!);
    const shown = (await page.getByTestId('receipt-sha256').textContent())!.trim();
    expect(createHash('sha256').update(file).digest('hex')).toBe(shown);
    const job = await stack.api<Json>('GET', `/api/jobs/${aliceJobId}`, { token: stack.tokens.alice });
    expect(shown).toBe(job.body.sha256);
    expect(file.length).toBe(job.body.sizeBytes);

    // The link was handed to the browser and dropped: neither the page nor the browser's storage keeps it.
    const kept = (await page.evaluate(
      'JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }) + document.documentElement.outerHTML',
    )) as string;
    expect(kept).not.toContain('sig=');

    await expectNoSeriousA11yViolations(page, 'requester page');
    await screenshot(page, 'portal-requester');
    await page.context().close();
  });

  it("mallory's download of alice's backup is refused with a message saying why", async () => {
    const page = await signIn('mallory');
    await page.getByLabel('Job id').fill(aliceJobId);
    await page.getByRole('button', { name: 'Download', exact: true }).click();
    const alert = page.getByRole('alert');
    await expect.poll(() => alert.textContent()).toContain("Only the job's requester or an Admin may download");
    await page.context().close();
  });

  it('the auditor searches the trail, opens the job, and exports it as CSV', async () => {
    const page = await signIn('auditor');
    await page.goto(`${portal}/#/audit`);
    await page.getByLabel('Job id').fill(aliceJobId);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('cell', { name: 'sas.download_denied' }).waitFor();
    await page.getByRole('button', { name: `Show job ${aliceJobId}` }).first().click();
    await page.getByRole('heading', { name: `Job ${aliceJobId}` }).waitFor();
    await expectNoSeriousA11yViolations(page, 'auditor page');
    await screenshot(page, 'portal-auditor');

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    const csv = readFileSync((await download.path())!, 'utf8');
    const [header, ...lines] = csv.trim().split(/\r?\n/);
    expect(header).toContain('action');
    expect(lines.some((line) => line.includes('job.available') && line.includes(aliceJobId))).toBe(true);
    await page.context().close();
  });

  it('the admin registers a database, and field errors from the API are shown by name', async () => {
    const page = await signIn('admin');
    await page.goto(`${portal}/#/admin`);
    await page.getByRole('rowheader', { name: source.databaseName }).waitFor();
    await page.getByLabel('Database name').fill('reporting');
    await page.getByLabel('Longest download link (minutes)').fill('30');
    await page.getByRole('button', { name: 'Register database' }).click();
    await page.getByRole('rowheader', { name: 'reporting' }).waitFor();
    const listed = await stack.api<{ items: { name: string; policy: { maxSasTtlMinutes: number } }[] }>('GET', `/api/servers/${serverId}/databases`, { token: stack.tokens.admin });
    expect(listed.body.items.find((database) => database.name === 'reporting')?.policy.maxSasTtlMinutes).toBe(30);
    await screenshot(page, 'portal-admin');

    // A name the API refuses: its problem+json names the field.
    await page.getByLabel('Database name').fill('bad\u0007name');
    await page.getByRole('button', { name: 'Register database' }).click();
    await expect.poll(() => page.getByRole('alert').last().textContent()).toMatch(/body\.name/);
    await expectNoSeriousA11yViolations(page, 'admin page');
    await page.context().close();
  });
});
