"""Screenshots of a running console's pages for the README: ``python -m devtools.screenshots``.

Start the demo first (``python3 dev.py demo``, in another terminal); this logs in with the demo's
user (its password from ``.relance/demo-login``, or ``--password``) in Debian's chromium and saves
the overview and, when the console has it, the inbox to ``docs/img/console-*.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = (("overview", "/"), ("inbox", "/inbox"))


def take(url: str, email: str, password: str, out: Path, *, chromium: str, language: str = "fr-FR",
         width: int = 1100) -> list[Path]:
    """Log in at ``url`` and save a screenshot of each page in PAGES that exists; the files written."""
    from playwright.sync_api import sync_playwright

    base = url.rstrip("/")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_context(locale=language, viewport={"width": width, "height": 800}).new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=email]", email)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            if "/login" in page.url:
                raise SystemExit(f"could not log in to {base} as {email}: check the password")
            for name, path in PAGES:
                answer = page.goto(f"{base}{path}")
                if answer is None or answer.status != 200:
                    print(f"{path}: answered {answer.status if answer else 'nothing'}, no screenshot")
                    continue
                target = out / f"console-{name}.png"
                page.screenshot(path=str(target), full_page=True)
                written.append(target)
                print(f"saved {target}")
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('CONSOLE_PORT', '8080')}/")
    parser.add_argument("--email", default="demo@relance.local")
    parser.add_argument("--password", default=None, help="default: the demo's, from DIR/demo-login")
    parser.add_argument("--dir", type=Path, default=ROOT / ".relance", help="the demo's folder (default .relance/)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--language", default="fr-FR", help="the browser's language (fr-FR, en-GB)")
    parser.add_argument("--chromium", default=os.environ.get("RELANCE_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)
    password = args.password
    if password is None:
        kept = args.dir / "demo-login"
        if not kept.exists():
            print(f"no {kept}: start the demo (python3 dev.py demo) or give --password", file=sys.stderr)
            return 2
        password = kept.read_text(encoding="utf-8").strip()
    take(args.url, args.email, password, args.out, chromium=args.chromium, language=args.language)
    return 0


if __name__ == "__main__":
    sys.exit(main())
