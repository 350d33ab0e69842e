// Drives the browser demo in headless Chromium: load the page, give it a photo, wait for the restoration, and print
// what the page reports (its error text, seconds, tiles) and the restored canvas as a PNG data URL.
// usage: node drive.cjs URL IMAGE [SCREENSHOT.png]
// EDGEENS_WEB_MAX_FLOATS=N makes every Float32Array longer than N fail as a browser out of memory does (RangeError
// "Array buffer allocation failed"), to see what the page tells its user then.
const path = require("path");
const root = process.env.EDGEENS_WEB || path.join(require("os").homedir(), ".cache", "edgeens", "web");
const puppeteer = require(path.join(root, "node_modules", "puppeteer-core"));

(async () => {
  const [url, image, screenshot] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 900, height: 700 });
    if (process.env.EDGEENS_WEB_MAX_FLOATS) {
      await page.evaluateOnNewDocument((limit) => {
        window.Float32Array = new Proxy(Float32Array, {
          construct(target, args) {
            if (typeof args[0] === "number" && args[0] > limit) throw new RangeError("Array buffer allocation failed");
            return Reflect.construct(target, args);
          },
        });
      }, Number(process.env.EDGEENS_WEB_MAX_FLOATS));
    }
    await page.goto(url);
    await page.waitForFunction("window.edgeensReady || window.restoreError", { timeout: 120000 });
    if (image) {
      await (await page.$("#photo")).uploadFile(image);
      await page.waitForFunction("window.restoreDone || window.restoreError", { timeout: 600000 });
    }
    const result = await page.evaluate(() => ({
      error: document.getElementById("error").textContent,
      seconds: window.restoreSeconds ?? null,
      tiles: window.restoreTiles ?? null,
      status: document.getElementById("status").textContent,
      png: window.restoreDone ? document.getElementById("after").toDataURL("image/png") : null,
    }));
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
})().catch((err) => { console.error(String(err)); process.exit(1); });
