// Opens the test page in Debian's chromium, headless, driven by playwright-core; waits for
// the page's script (window.result) and for the given number of its POSTs to another
// origin to be answered; prints both as JSON on stdout: {"result": ..., "posts": [[path,
// status], ...]}.
//
// Usage: node tests/browser/drive.mjs PAGE_URL USER_DATA_DIR POSTS
import { chromium } from 'playwright-core'

const [url, userDataDir, expected] = process.argv.slice(2)
const pageOrigin = new URL(url).origin
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
try {
  const page = await context.newPage()
  const posts = []
  let answered
  const allAnswered = new Promise((resolve) => { answered = resolve })
  page.on('console', (message) => console.error(`page ${message.type()}: ${message.text()}`))
  page.on('requestfailed', (request) =>
    console.error(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`))
  page.on('response', (response) => {
    const request = response.request()
    if (request.method() === 'POST' && new URL(request.url()).origin !== pageOrigin) {
      posts.push([new URL(request.url()).pathname, response.status()])
      if (posts.length >= Number(expected)) answered()
    }
  })
  await page.goto(url)
  const result = await page.evaluate(() => window.result)
  let timer
  await Promise.race([allAnswered, new Promise((resolve) => { timer = setTimeout(resolve, 20_000) })])
  clearTimeout(timer)
  console.log(JSON.stringify({ result, posts }))
} finally {
  await context.close()
}
