"""A form with a file (the contacts and invoices imports): its CSRF token checked as every form's, the file
kept in a temporary folder under a safe name while an importer reads it.

The foundation's ``CheckedForm`` takes no file (``max_files=0``); this is the same check for one file.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from services.console.web import core, i18n
from shared.domain.models import Language
from shared.errors import InputError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024

i18n.register({
    "import.title": ("Importer un fichier", "Import a file"),
    "import.file": ("Fichier", "File"),
    "import.submit": ("Importer", "Import"),
    "import.refused": ("Rien n'a été importé : corrigez ces lignes puis importez le fichier à nouveau.",
                       "Nothing was imported: fix these lines, then import the file again."),
    "err.upload.none": ("Choisissez un fichier.", "Choose a file."),
    "err.upload.too_big": ("Ce fichier dépasse {mb} Mo : coupez-le en plusieurs fichiers.",
                       "This file is over {mb} MB: split it into several files."),
})


# A form's fields and multipart framing around its file: a request longer than the file's limit plus this
# is refused by its Content-Length, before anything is read (Starlette would spool it all to disk first).
FORM_OVERHEAD_BYTES = 64 * 1024
_TOO_BIG = "__too_big__"


def _declared_length(request: Request) -> int:
    given = request.headers.get("content-length", "")
    return int(given) if given.isdigit() and len(given) < 20 else 0


async def _checked_upload(request: Request) -> FormData:
    if _declared_length(request) > MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES:
        return FormData([(_TOO_BIG, "1")])  # nothing read, nothing changed: the page says the file is too big
    form = await request.form(max_files=1, max_fields=20)
    if not await run_in_threadpool(core.csrf_ok, request, form.get(core.CSRF_FIELD)):
        raise core.CsrfRefused()
    return form


# A POST page's parameter ``form: CheckedUpload``: the form with its file, once its CSRF token is checked.
CheckedUpload = Annotated[FormData, Depends(_checked_upload)]


def _safe_name(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name or "").name).strip("._") or "import"
    if not Path(base).suffix:
        base += ".csv"  # no type said: read as CSV; another type is refused by the importer, by name
    return base[-100:]


@contextmanager
def uploaded_file(form: FormData, field: str, lang: Language) -> Iterator[Path]:
    """The uploaded file as a path (its name kept, made safe, so that an importer's messages name it);
    InputError (in the page's language) when there is none or it is too large. Deleted afterwards."""
    if form.get(_TOO_BIG):
        megabytes = MAX_UPLOAD_BYTES // (1024 * 1024)
        raise InputError(i18n.translate("err.upload.too_big", lang, mb=megabytes), code="upload.too_big", mb=megabytes)
    upload = form.get(field)
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InputError(i18n.translate("err.upload.none", lang), code="upload.none")
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        megabytes = MAX_UPLOAD_BYTES // (1024 * 1024)
        raise InputError(i18n.translate("err.upload.too_big", lang, mb=megabytes), code="upload.too_big", mb=megabytes)
    with tempfile.TemporaryDirectory(prefix="relance-import-") as folder:
        path = Path(folder) / _safe_name(upload.filename)
        path.write_bytes(data)
        yield path
