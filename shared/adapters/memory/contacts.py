"""Contacts in memory (unique by phone, as the MongoDB index makes them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shared.adapters.documents import contact_from_doc, contact_record
from shared.adapters.memory.base import Doc, MemoryRepository, before
from shared.domain.models import Contact
from shared.domain.records import ContactName, ContactRecord
from shared.domain.repositories import Upserted
from shared.language.text import name_key, name_words


class MemoryContacts(MemoryRepository):
    """See :class:`shared.domain.repositories.ContactRepository`."""

    def _by_phone(self, phone: str) -> Doc | None:
        return next((doc for doc in self.docs.values() if doc.get("phone") == phone), None)

    def upsert(self, contact: Contact, now: datetime) -> Upserted:
        """Insert or update a contact by phone; fields that are equal are not rewritten."""
        data = contact.model_dump(mode="python", exclude={"id", "opted_out", "last_inbound_at"})
        data["name_key"] = name_key(contact.name)
        existing = self._by_phone(contact.phone)
        if existing is None:
            if contact.id in self.docs:
                raise ValueError(f"contact id {contact.id} exists with another phone")
            self._insert({"_id": contact.id, **data, "opted_out": False, "last_inbound_at": None,
                          "created_at": now, "updated_at": now})
            return "inserted"
        changed = {k: v for k, v in data.items() if existing.get(k) != v}
        if not changed:
            return "unchanged"
        existing.update({**changed, "updated_at": now})
        return "updated"

    def get(self, contact_id: str) -> Contact | None:
        """A contact by id."""
        doc = self._get(contact_id)
        return contact_from_doc(doc) if doc else None

    def by_phone(self, phone: str) -> Contact | None:
        """A contact by E.164 phone."""
        doc = self._by_phone(phone)
        return contact_from_doc(doc) if doc else None

    def find(self, *, tags: list[str] | None = None, equals: dict[str, str] | None = None,
             after: str | None = None, limit: int = 0) -> list[Contact]:
        """Contacts having all ``tags`` and whose fields equal ``equals``, by id."""
        def match(doc: Doc) -> bool:
            fields = doc.get("fields") or {}
            return (set(tags or []) <= set(doc.get("tags") or []) and (after is None or doc["_id"] > after)
                    and all(fields.get(key) == value for key, value in (equals or {}).items()))
        found = sorted(self._where(match), key=lambda doc: doc["_id"])
        return [contact_from_doc(doc) for doc in (found[:limit] if limit else found)]

    def names(self, *, prefix: str = "", phone_prefixes: Sequence[str] = ()) -> list[ContactName]:
        """The contacts with a word of their name starting with ``prefix`` (what follows that word too), or a
        phone starting with one of ``phone_prefixes``, by key."""
        found = []
        for doc in self.docs.values():
            key = doc.get("name_key")
            key = key if isinstance(key, str) else name_key(str(doc.get("name") or ""))
            phone = str(doc.get("phone") or "")
            words = name_words(str(doc.get("name") or ""))
            if ((not prefix and not phone_prefixes) or (prefix and any(w.startswith(prefix) for w in words))
                    or any(p and phone.startswith(p) for p in phone_prefixes)):
                found.append(ContactName(key, doc["_id"], bool(doc.get("opted_out"))))
        return sorted(found)

    def get_many(self, contact_ids: Sequence[str]) -> list[Contact]:
        """The contacts with these ids that exist, in the order given."""
        return [contact_from_doc(self.docs[i]) for i in contact_ids if i in self.docs]

    def record(self, contact_id: str) -> ContactRecord | None:
        """A contact as stored, even one the model refuses."""
        doc = self._get(contact_id)
        return contact_record(doc) if doc else None

    def records(self, contact_ids: Sequence[str]) -> list[ContactRecord]:
        """The contacts with these ids that exist, as stored, in the order given (one query)."""
        return [contact_record(self.docs[i]) for i in contact_ids if i in self.docs]

    def record_by_phone(self, phone: str) -> ContactRecord | None:
        """A contact by phone as stored, even one the model refuses."""
        doc = self._by_phone(phone)
        return contact_record(doc) if doc else None

    def set_opt_out(self, contact_id: str, opted_out: bool, now: datetime) -> bool:
        """Record an opt-out (or re-subscription); True if it changed."""
        doc = self.docs.get(contact_id)
        if doc is None or doc.get("opted_out") == opted_out:
            return False
        doc.update({"opted_out": opted_out, "opted_out_at": now if opted_out else None, "updated_at": now})
        return True

    def touch_inbound(self, contact_id: str, at: datetime) -> None:
        """Open the 24-hour window (only moves forward)."""
        doc = self.docs.get(contact_id)
        if doc is not None and (doc.get("last_inbound_at") is None or before(doc["last_inbound_at"], at)):
            doc.update({"last_inbound_at": at, "updated_at": at})

    def count(self) -> int:
        """How many contacts."""
        return len(self.docs)
