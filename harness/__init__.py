"""What the tests and the benchmarks share to drive the app: polling with a deadline (wait.py), a real server and
Chromium (browser.py), the Train page's controls as seen in the browser (train_page.py)."""
