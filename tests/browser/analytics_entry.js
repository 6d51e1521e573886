// Segment's analytics.js (@segment/analytics-next from npm) for tests/test_segment_browser.py:
// esbuild bundles this file with the library into one script the test page loads, so the
// page needs no CDN.
import { AnalyticsBrowser } from '@segment/analytics-next'

window.AnalyticsBrowser = AnalyticsBrowser
