"""The Train page's controls as a person uses them in the browser: the progress text, the step it reports, the
settings form's Start (used by the e2e tests and the soak benchmark alike)."""
from __future__ import annotations

import re

from harness.browser import key
from harness.wait import wait_until

PROGRESS = '[data-testid="stProgress"]'


def progress_text(page) -> str:
    """The progress bar's text ("running · epoch 3/30 · …"), "" when it is not shown."""
    loc = page.locator(PROGRESS)
    return loc.first.inner_text() if loc.count() else ""


def progress_step(page) -> int:
    """The step the progress bar reports ("… · step 123/3900 · …"), -1 when it is not shown."""
    match = re.search(r"step (\d+)/", progress_text(page))
    return int(match.group(1)) if match else -1


def start_training(page, epochs: int, **numbers) -> None:
    """Fill the settings form (epochs and any number inputs by key) and press Start."""
    for name, value in {"tf_epochs": epochs, **numbers}.items():
        page.locator(f"{key(name)} input").fill(str(value))
    page.locator(f"{key('train_start')} button").click()
    wait_until(lambda: progress_text(page).startswith(("running", "finished")), "the job to start", timeout=60)
