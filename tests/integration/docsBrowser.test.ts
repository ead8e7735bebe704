/**
 * /docs in a real browser: Swagger UI renders the document, lists every operation, and "Try it
 * out" on GET /v1/me with a tenant key answers 200. Driven by playwright-core with a system
 * Chromium (Debian's `chromium` package; CI installs it). Where no browser is installed the test
 * is skipped, saying so, rather than failing on the machine instead of the code.
 */
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { createApp } from '../../src/app';
import { openapiDocument } from '../../src/utils/openapi';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';

const BROWSER_CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
const executablePath = BROWSER_CANDIDATES.find((candidate): candidate is string => !!candidate && existsSync(candidate));

if (!executablePath) {
  process.stderr.write(
    `docsBrowser.test.ts: SKIPPED, no Chromium found (looked at CHROMIUM_PATH and ${BROWSER_CANDIDATES.slice(1).join(', ')}); install one with: apt-get install -y chromium\n`,
  );
}
const describeWithBrowser = executablePath ? describe : describe.skip;

describeWithBrowser('/docs in a browser', () => {
  let server: Server;
  let baseUrl: string;
  let browser: Browser;

  beforeAll(async () => {
    await setupTestDatabase();
    server = await new Promise<Server>((resolve) => {
      const listening = createApp().listen(0, '127.0.0.1', () => resolve(listening));
    });
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Root in containers and CI cannot use Chromium's sandbox.
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    await teardownTestDatabase();
  });

  it('when opened, then it renders every operation, and Try it out on GET /v1/me with a tenant key answers 200', async () => {
    const tenant = await createTestTenant();
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));

    await page.goto(`${baseUrl}/docs/`);
    await page.locator('.swagger-ui .info .title').waitFor({ timeout: 20_000 });
    await page.locator('.opblock').first().waitFor();

    const listed = await page.locator('.opblock').evaluateAll((blocks) =>
      blocks.map((block) => {
        const method = block.querySelector('.opblock-summary-method')?.textContent ?? '';
        const path = block.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? '';
        return `${method.toUpperCase()} ${path}`;
      }),
    );
    const documented = Object.entries((openapiDocument() as { paths: Record<string, object> }).paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect([...listed].sort()).toEqual([...documented].sort());
    expect(listed).toEqual(expect.arrayContaining(['GET /v1/me', 'POST /webhooks/meta', 'GET /healthz', 'GET /metrics']));

    // Authorize with the tenant key, the way a person does: the padlock, the tenantKey field.
    await page.locator('.auth-wrapper .authorize').click();
    const tenantScheme = page.locator('.modal-ux .auth-container').filter({ hasText: 'tenantKey' });
    await tenantScheme.locator('input').fill(tenant.apiKey);
    await tenantScheme.locator('button.authorize').click();
    await page.locator('.modal-ux .btn-done').first().click();

    const me = page.locator('.opblock-get').filter({ has: page.locator('.opblock-summary-path[data-path="/v1/me"]') });
    await me.locator('.opblock-summary').click();
    await me.locator('.try-out__btn').click();
    await me.locator('.execute').click();
    const status = me.locator('.live-responses-table .response .response-col_status');
    await status.waitFor({ timeout: 15_000 });
    expect((await status.textContent())?.trim()).toBe('200');
    expect(await me.locator('.live-responses-table').textContent()).toContain(tenant.userId);
    expect(problems).toEqual([]);
    await page.close();
  }, 90_000);
});
