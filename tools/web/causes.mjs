// Why the page drew its frames during a DDIM-20 run (egui's repaint causes, counted by the page).
// node tools/web/causes.mjs URL
import { openApp, ddim20 } from "./page.mjs";
const [url] = process.argv.slice(2);
const { browser, page, command, report } = await openApp(url);
await ddim20(command, page);
const before = (await report()).repaint_causes;
await page.waitForTimeout(200);
await command("Run");
await page.waitForTimeout(3000);
await report();
await page.waitForTimeout(100);
const r = await report();
console.log("before:", before);
console.log("after:", r.repaint_causes, "done", r.sampling.done);
await browser.close();
