"""The contract suite exercises every method of every repository interface (a new one needs its test)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from shared.domain import api_keys as api_key_interfaces
from shared.domain import audit as audit_interfaces
from shared.domain import reports as report_interfaces
from shared.domain import repositories as interfaces
from shared.domain import users as user_interfaces

HERE = Path(__file__).parent
PROTOCOLS = {"contacts": interfaces.ContactRepository, "campaigns": interfaces.CampaignRepository,
             "followups": interfaces.FollowUpRepository, "messages": interfaces.MessageRepository,
             "events": interfaces.EventRepository, "owner": interfaces.OwnerRepository,
             "jobs": interfaces.JobRepository, "invoices": interfaces.InvoiceRepository,
             "hooks": interfaces.HookRepository,
             "api_keys": api_key_interfaces.ApiKeyRepository,
             "idempotency": api_key_interfaces.IdempotencyRepository,
             "audit": audit_interfaces.AuditRepository,
             "users": user_interfaces.UserRepository, "sessions": user_interfaces.SessionRepository,
             "login_throttle": user_interfaces.LoginThrottleRepository,
             "reports": report_interfaces.ReportRepository}


def _called() -> set[str]:
    """``repository.method`` for every ``repos.<repository>.<method>`` written in the contract tests."""
    found = set()
    for path in HERE.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "repos"):
                found.add(f"{node.value.attr}.{node.attr}")
    return found


def test_every_repository_method_has_a_contract_test() -> None:
    wanted = {f"{name}.{method}" for name, protocol in PROTOCOLS.items()
              for method, _ in inspect.getmembers(protocol, inspect.isfunction) if not method.startswith("_")}
    assert wanted, "no interface found"
    assert wanted - _called() == set()
