"""Contacts in MongoDB (``contacts``: unique by phone)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from shared.adapters.documents import contact_from_doc, contact_record
from shared.adapters.mongo.connection import Doc, MongoRepository
from shared.domain.models import Contact
from shared.domain.records import ContactName, ContactRecord
from shared.domain.repositories import Upserted
from shared.language.text import name_key, name_words


class MongoContacts(MongoRepository):
    """See :class:`shared.domain.repositories.ContactRepository`."""

    collection_name = "contacts"

    def upsert(self, contact: Contact, now: datetime) -> Upserted:
        """Insert or update a contact by phone; fields that are equal are not rewritten."""
        data = contact.model_dump(mode="python", exclude={"id", "opted_out", "last_inbound_at"})
        data["name_key"] = name_key(contact.name)
        data["name_words"] = name_words(contact.name)
        existing = self.collection.find_one({"phone": contact.phone})
        if existing is None:
            try:
                self.collection.insert_one({"_id": contact.id, **data, "opted_out": False, "last_inbound_at": None,
                                            "created_at": now, "updated_at": now})
                return "inserted"
            except DuplicateKeyError:
                existing = self.collection.find_one({"phone": contact.phone})
                if existing is None:
                    raise
        changed = {k: v for k, v in data.items() if existing.get(k) != v}
        if not changed:
            return "unchanged"
        self.collection.update_one({"_id": existing["_id"]}, {"$set": {**changed, "updated_at": now}})
        return "updated"

    def get(self, contact_id: str) -> Contact | None:
        """A contact by id."""
        doc = self.collection.find_one({"_id": contact_id})
        return contact_from_doc(doc) if doc else None

    def by_phone(self, phone: str) -> Contact | None:
        """A contact by E.164 phone."""
        doc = self.collection.find_one({"phone": phone})
        return contact_from_doc(doc) if doc else None

    def find(self, *, tags: list[str] | None = None, equals: dict[str, str] | None = None,
             after: str | None = None, limit: int = 0) -> list[Contact]:
        """Contacts having all ``tags`` and whose fields equal ``equals``."""
        query: Doc = {}
        if tags:
            query["tags"] = {"$all": tags}
        for key, value in (equals or {}).items():
            query[f"fields.{key}"] = value
        if after is not None:
            query["_id"] = {"$gt": after}
        return [contact_from_doc(d) for d in self.collection.find(query).sort("_id", ASCENDING).limit(limit)]

    def names(self, *, prefix: str = "", phone_prefixes: Sequence[str] = ()) -> list[ContactName]:
        """The contacts with a word of their name (and what follows it) starting with ``prefix``, or a phone
        starting with one of ``phone_prefixes``, by key.

        Each prefix is a range on an index (``name_words``, multikey, and ``phone_unique``), so a search
        reads what it finds; with no prefix every contact is read, the three fields only.
        """
        queries: list[Doc] = []
        if prefix:
            queries.append({"name_words": {"$elemMatch": _starting(prefix)}})
        queries += [{"phone": _starting(phone)} for phone in phone_prefixes if phone]
        found: dict[str, ContactName] = {}
        for query in queries or [{}]:
            for doc in self.collection.find(query, {"name_key": 1, "name": 1, "opted_out": 1}):
                key = doc.get("name_key")
                found[doc["_id"]] = ContactName(key if isinstance(key, str) else name_key(str(doc.get("name") or "")),
                                                doc["_id"], bool(doc.get("opted_out")))
        return sorted(found.values())

    def get_many(self, contact_ids: Sequence[str]) -> list[Contact]:
        """The contacts with these ids that exist, in the order given (one query)."""
        docs = {d["_id"]: d for d in self.collection.find({"_id": {"$in": list(contact_ids)}})} if contact_ids else {}
        return [contact_from_doc(docs[i]) for i in contact_ids if i in docs]

    def record(self, contact_id: str) -> ContactRecord | None:
        """A contact as stored, even one the model refuses."""
        doc = self.collection.find_one({"_id": contact_id})
        return contact_record(doc) if doc else None

    def records(self, contact_ids: Sequence[str]) -> list[ContactRecord]:
        """The contacts with these ids that exist, as stored, in the order given (one query)."""
        docs = {d["_id"]: d for d in self.collection.find({"_id": {"$in": list(contact_ids)}})} if contact_ids else {}
        return [contact_record(docs[i]) for i in contact_ids if i in docs]

    def record_by_phone(self, phone: str) -> ContactRecord | None:
        """A contact by phone as stored, even one the model refuses."""
        doc = self.collection.find_one({"phone": phone})
        return contact_record(doc) if doc else None

    def set_opt_out(self, contact_id: str, opted_out: bool, now: datetime) -> bool:
        """Record an opt-out (or re-subscription); True if it changed."""
        result = self.collection.update_one(
            {"_id": contact_id, "opted_out": {"$ne": opted_out}},
            {"$set": {"opted_out": opted_out, "opted_out_at": now if opted_out else None, "updated_at": now}},
        )
        return result.modified_count == 1

    def touch_inbound(self, contact_id: str, at: datetime) -> None:
        """Open the 24-hour window: remember the contact's latest message time."""
        self.collection.update_one(
            # Missing, null or earlier: no top-level $or beside the _id, which SecantusDB answers by
            # reading every contact.
            {"_id": contact_id, "last_inbound_at": {"$not": {"$gte": at}}},
            {"$set": {"last_inbound_at": at, "updated_at": at}},
        )

    def count(self) -> int:
        """How many contacts (the collection's estimate: no scan)."""
        return self.collection.estimated_document_count()


def _starting(prefix: str) -> Doc:
    """Strings that start with ``prefix``: a range, which an index answers (a regex is read on every document)."""
    return {"$gte": prefix, "$lt": prefix + "\U0010ffff"}


def backfill_name_keys(collection: Any) -> int:
    """Give ``name_key`` and ``name_words`` to the contacts stored before they existed (idempotent); how many."""
    done = 0
    for doc in collection.find({"name_words": {"$exists": False}}, {"name": 1}):
        name = str(doc.get("name") or "")
        done += collection.update_one({"_id": doc["_id"], "name_words": {"$exists": False}},
                                      {"$set": {"name_key": name_key(name), "name_words": name_words(name)}}
                                      ).modified_count
    return done
